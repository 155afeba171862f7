#!/usr/bin/env bash
# `make dist`: release artifacts of this version (Cargo.toml) in build/dist/:
#   mod_client_management-<version>.tar.gz        source: `git archive` of HEAD, plus the rockspec
#                                                 (for `luarocks make` in the unpacked directory)
#   mod_client_management-<version>-1.rockspec    builds from that tarball (source.url + md5)
#   rocks/                                        a rocks server: manifest, the binary rock
#                                                 (<platform>.rock, stripped) and the source rock
#                                                 (.src.rock: rockspec + tarball); serve it over
#                                                 HTTP or point plugin_server at file://<path>
#   SHA256SUMS
# DIST_URL=https://example.org/releases: where the tarball will be published (the rockspecs'
# source.url); default file://<repo>/build/dist/<tarball>, fine for the source rock, which
# carries the tarball with it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
version=$(scripts/version.sh)
name="mod_client_management-$version"
dist=build/dist
tarball="$name.tar.gz"
url="${DIST_URL:+${DIST_URL%/}/$tarball}"
url="${url:-file://$repo/$dist/$tarball}"

in_git=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ "$(git rev-parse --show-toplevel)" = "$repo" ]; then
	in_git=1
	git diff --quiet HEAD -- \
		|| echo "dist: warning: uncommitted changes; the tarball is HEAD, the binary rock this working tree" >&2
else
	echo "dist: warning: not a git checkout; the tarball is this directory (without build/, target/, .run/, node_modules/)" >&2
fi
rm -rf "$dist"
mkdir -p "$dist/rocks"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The rockspec inside the tarball cannot hold the tarball's own checksum.
scripts/rockspec.sh --url "$url" > "$tmp/$name-1.rockspec"
if [ -n "$in_git" ]; then
	git archive --format=tar.gz --prefix="$name/" --add-file="$tmp/$name-1.rockspec" -o "$dist/$tarball" HEAD
else
	tar -czf "$dist/$tarball" --exclude-vcs --exclude=./build --exclude=./target --exclude=./.run \
		--exclude=node_modules --transform="s,^\.,$name," -C "$repo" . \
		--transform="s,^.*/\?$name-1\.rockspec\$,$name/$name-1.rockspec," -C "$tmp" "$name-1.rockspec"
fi
md5=$(md5sum "$dist/$tarball" | cut -d' ' -f1)
scripts/rockspec.sh --url "$url" --md5 "$md5" > "$dist/$name-1.rockspec"

# Source rock: luarocks fetches the tarball (checking the md5) and packs it with the rockspec.
(cd "$dist/rocks" && luarocks pack --lua-version=5.4 "$repo/$dist/$name-1.rockspec" >/dev/null)
# Binary rock, built from this checkout with the same rockspec.
ROCKSPEC="$dist/$name-1.rockspec" scripts/build-rock.sh >/dev/null
cp build/rock/"$name"-1.*.rock "$dist/rocks/"
luarocks-admin make-manifest --lua-version=5.4 "$dist/rocks" >/dev/null

(cd "$dist" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)

rock=$(ls "$dist"/rocks/"$name"-1.*.rock | grep -v '\.src\.rock$')
platform=${rock##*/$name-1.}
platform=${platform%.rock}
glibc=$(unzip -p "$rock" lib/client_management.so > "$tmp/lib.so" \
	&& objdump -T "$tmp/lib.so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
echo "dist: $name in $dist/ (binary rock: $platform, needs ${glibc/_/ >= })"
(cd "$dist" && find . -type f | sort | sed 's/^\.\//  /')
