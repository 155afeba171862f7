#!/usr/bin/env bash
# Builds the plugin of one git revision into DIR, for the before/after end-to-end benchmark:
#
#   benches/e2e/build-baseline.sh REV DIR        # e.g. main~5 /tmp/bench-before
#   BENCH_PLUGINS="before=/tmp/bench-before,after=build/plugin" node benches/e2e/run.js
#
# DIR then holds mod_client_management/{mod_client_management.lua,client_management.so} (what
# plugin_paths needs) and BUILD-INFO (revision, commit, subject), which the benchmark prints.
#
# The revision is exported with `git archive` into a temp dir (the checkout and its working
# tree are not touched) and built there by the revision's own scripts/build-plugin.sh, so
# whatever it does at build time (e.g. writing the version into the Lua file) is done; its
# build/plugin/mod_client_management/ is copied to DIR. A revision without that script is
# built with `cargo build --release --features module` and the two files are copied.
# Cargo's target dir is shared between baseline builds (BENCH_BASELINE_TARGET, default
# target/bench-baseline of this checkout), never the checkout's own target/release.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 REV DIR" >&2
	exit 2
fi
rev=$1
dir=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)

commit=$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}") || {
	echo "$0: '$rev' is not a commit of $repo" >&2
	exit 2
}
target=${BENCH_BASELINE_TARGET:-$repo/target/bench-baseline}
mkdir -p "$target" "$dir"
target=$(cd "$target" && pwd)
dir=$(cd "$dir" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cm-baseline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git -C "$repo" archive --format=tar "$commit" | tar -x -C "$tmp"
# The tree's target/ is the shared baseline target dir: scripts that expect target/release/…
# find their output there, and dependencies are built once for all baselines.
rm -rf "$tmp/target"
ln -s "$target" "$tmp/target"

echo "# building $rev ($commit) in $tmp (cargo target $target)" >&2
if [ -x "$tmp/scripts/build-plugin.sh" ]; then
	(cd "$tmp" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR scripts/build-plugin.sh) >&2
	built="$tmp/build/plugin/mod_client_management"
else
	(cd "$tmp" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR cargo build --release --features module) >&2
	built="$tmp/build/plugin/mod_client_management"
	mkdir -p "$built"
	install -m 0644 "$tmp/lua/mod_client_management.lua" "$built/mod_client_management.lua"
	install -m 0755 "$tmp/target/release/libclient_management.so" "$built/client_management.so"
fi
for f in mod_client_management.lua client_management.so; do
	[ -f "$built/$f" ] || { echo "$0: the build of $rev left no $built/$f" >&2; exit 1; }
done

rm -rf "$dir/mod_client_management"
cp -R "$built" "$dir/mod_client_management"
chmod -R a+rX "$dir"
{
	echo "revision: $rev"
	echo "commit: $commit"
	echo "subject: $(git -C "$repo" log -1 --format=%s "$commit")"
	echo "date: $(git -C "$repo" log -1 --format=%cI "$commit")"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$dir/BUILD-INFO"
echo "plugin of $rev ($(git -C "$repo" rev-parse --short "$commit")) ready in $dir/mod_client_management" >&2
