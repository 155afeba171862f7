#!/usr/bin/env bash
# Builds Prosody trunk from a source snapshot for the tests (`make test-trunk`, `make test`):
#   scripts/build-trunk.sh            # prints the directory of the build
# The snapshot is TRUNK_TARBALL, default the one tarball in ../shared/prosody-trunk/ beside the
# checkout (a `git archive` of Prosody's trunk). It is unpacked into build/trunk/<sha256>/src,
# configured for Lua 5.4 and installed into build/trunk/<sha256>/prefix (nothing outside build/).
# A stamp keyed on the tarball's sha256 makes it build only once per tarball.
#
# build/trunk/<sha256>/ then holds:
#   env                  PROSODY=, PROSODYCTL=, E2E_EXTRA_PLUGIN_PATHS=, TRUNK_VERSION= (sh syntax)
#   BUILD-INFO           what was built: tarball, sha256, commit, `prosody --version`, when
#   community-modules/   links to mod_sasl2, mod_sasl2_bind2, mod_sasl2_fast, mod_sasl2_sm of
#                        Debian's prosody-modules (trunk ships none; nothing else of 13.0's)
# build/trunk/current is a link to the last build.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "build-trunk: $*" >&2; }
die() {
	echo >&2
	echo "build-trunk: ERROR: $*" >&2
	echo >&2
	exit 1
}

# --- the tarball -------------------------------------------------------------------------------
tarball=${TRUNK_TARBALL:-}
if [ -z "$tarball" ]; then
	dir="$(cd "$repo/.." && pwd)/shared/prosody-trunk"
	shopt -s nullglob
	found=("$dir"/*.tar.gz)
	shopt -u nullglob
	[ ${#found[@]} -gt 0 ] || die "no Prosody trunk snapshot: $dir/*.tar.gz is missing.
  The trunk tests need one (CI has it in ../shared/prosody-trunk/ beside the checkout).
  Point TRUNK_TARBALL=/path/to/prosody-trunk.tar.gz at a snapshot (a git or hg archive of trunk)."
	[ ${#found[@]} -eq 1 ] || die "several tarballs in $dir: ${found[*]}; choose one with TRUNK_TARBALL=…"
	tarball=${found[0]}
fi
[ -f "$tarball" ] || die "TRUNK_TARBALL=$tarball: no such file"
tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"

sha=$(sha256sum "$tarball" | awk '{print $1}')
out="$repo/build/trunk/$sha"
stamp="$out/.built"

# --- community modules: only the four the suite needs, from Debian's prosody-modules ------------
community_dir=${TRUNK_COMMUNITY_MODULES:-/usr/lib/prosody/modules}
link_community_modules() {
	rm -rf "$out/community-modules"
	mkdir -p "$out/community-modules"
	local m
	for m in mod_sasl2 mod_sasl2_bind2 mod_sasl2_fast mod_sasl2_sm; do
		[ -f "$community_dir/$m/$m.lua" ] || die "$community_dir/$m/$m.lua is missing (Debian's prosody-modules: scripts/install-deps.sh)"
		ln -s "$community_dir/$m" "$out/community-modules/$m"
	done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sha" ] && [ -x "$out/prefix/bin/prosody" ]; then
	say "Prosody trunk from $(basename "$tarball") already built in $out"
	link_community_modules
	ln -sfn "$sha" "$repo/build/trunk/current"
	echo "$out"
	exit 0
fi

# --- build -------------------------------------------------------------------------------------
for tool in gcc make tar lua5.4; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (scripts/install-deps.sh installs the build dependencies)"
done
for header in /usr/include/lua5.4/lua.h /usr/include/idn2.h /usr/include/openssl/ssl.h /usr/include/unicode/uidna.h; do
	[ -f "$header" ] || die "$header not found (scripts/install-deps.sh installs the build dependencies)"
done

say "building Prosody trunk from $tarball (sha256 $sha) in $out"
start=$(date +%s)
rm -rf "$out"
mkdir -p "$out/src"
tar -xzf "$tarball" -C "$out/src" --strip-components=1
src="$out/src"
[ -x "$src/configure" ] && [ -f "$src/prosody" ] || die "$tarball does not look like a Prosody source tree"

# The version Prosody reports (`prosody --version`, the log, XEP-0092): an hg archive carries
# .hg_archival.txt, which Prosody's makefile turns into prosody.version; a git archive carries the
# commit in its pax header only: it goes into prosody.release, which the makefile copies to
# prosody.version ("trunk-<commit>").
commit=$(gzip -dc "$tarball" | git get-tar-commit-id 2>/dev/null || true)
if [ ! -f "$src/prosody.version" ] && [ ! -f "$src/prosody.release" ] && [ ! -f "$src/.hg_archival.txt" ]; then
	if [ -n "$commit" ]; then
		echo "trunk-${commit:0:12}" > "$src/prosody.release"
	else
		echo "trunk-$(basename "$tarball" .tar.gz)" > "$src/prosody.release"
	fi
fi

(
	cd "$src"
	./configure --ostype=debian --lua-version=5.4 --runwith=lua5.4 \
		--with-lua-include=/usr/include/lua5.4 --prefix="$out/prefix" --no-example-certs
	make -j"$(nproc)"
	make install
) > "$out/build.log" 2>&1 || {
	tail -n 40 "$out/build.log" >&2
	die "building Prosody trunk failed; the whole log is $out/build.log"
}

# The version as Prosody reads it itself (`prosody --version` only warns when run as root).
version=$(cat "$out/prefix/lib/prosody/prosody.version" 2>/dev/null || echo unknown)
link_community_modules
cat > "$out/env" <<ENV
PROSODY='$out/prefix/bin/prosody'
PROSODYCTL='$out/prefix/bin/prosodyctl'
E2E_EXTRA_PLUGIN_PATHS='$out/community-modules'
TRUNK_VERSION='$version'
ENV
{
	echo "tarball:  $tarball"
	echo "sha256:   $sha"
	echo "commit:   ${commit:-unknown (not a git archive)}"
	echo "version:  $version"
	echo "prefix:   $out/prefix"
	echo "built:    $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - start ))s ($(lua5.4 -v 2>&1))"
	echo "community modules: mod_sasl2 mod_sasl2_bind2 mod_sasl2_fast mod_sasl2_sm from $community_dir"
} > "$out/BUILD-INFO"
echo "$sha" > "$stamp"
ln -sfn "$sha" "$repo/build/trunk/current"
say "built Prosody $version in $(( $(date +%s) - start ))s: $out"
cat "$out/BUILD-INFO" >&2
echo "$out"
