#!/usr/bin/env bash
# `make test-dist`: checks what `make dist` made the way a packager or an admin uses it, in a
# temp dir outside the checkout:
#   - the rockspec: `luarocks pack` (fetches the tarball, checks its md5) and `luarocks build` of
#     the resulting source rock into a fresh tree (a full cargo build);
#   - the tarball: unpacked, `luarocks make` with the rockspec it carries (another full build);
#   - the binary rock: its files, the library stripped, exporting luaopen_client_management,
#     needing at most the glibc the README promises (GLIBC_FLOOR);
#   - the rocks directory: its manifest lists the binary and the source rock of this version.
# Installing by name from the rocks directory is tests/e2e/test/install.test.js.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dist="${E2E_DIST_DIR:-$repo/build/dist}"
version=$("$repo/scripts/version.sh")
name="mod_client_management-$version"
glibc_floor=2.34 # README "Installing": x86_64 Linux, glibc >= 2.34

fail() { echo "tests/dist/check.sh: FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
for f in "$name.tar.gz" "$name-1.rockspec" rocks/manifest; do
	[ -f "$dist/$f" ] || fail "$dist/$f is missing (make dist)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
lr() { luarocks --lua-version=5.4 "$@"; }
# The module's libraries (module:require), as the checkout has them: every one must ship.
libs=$(cd "$repo/lua" && ls *.lib.lua)
installed_files() { # tree → fails unless the module, its libraries and the native library landed
	[ -f "$1/share/lua/5.4/mod_client_management.lua" ] || fail "$2: no share/lua/5.4/mod_client_management.lua in $1"
	for lib in $libs; do
		[ -f "$1/share/lua/5.4/$lib" ] || fail "$2: no share/lua/5.4/$lib in $1 (is it in the rockspec's install.lua?)"
	done
	[ -f "$1/lib/lua/5.4/client_management.so" ] || fail "$2: no lib/lua/5.4/client_management.so in $1"
	[ -d "$1/lib/luarocks/rocks-5.4/mod_client_management/$version-1" ] || fail "$2: rock $version-1 not in the tree's manifest dir"
}

# The rockspec, outside the checkout.
grep -q "^version = \"$version-1\"" "$dist/$name-1.rockspec" || fail "rockspec version is not $version-1"
grep -q 'git+file' "$dist/$name-1.rockspec" && fail "rockspec fetches from a git checkout"
mkdir pack && (cd pack && lr pack "$dist/$name-1.rockspec" >../pack.log 2>&1) || { cat pack.log; fail "luarocks pack $name-1.rockspec"; }
[ -f "pack/$name-1.src.rock" ] || fail "luarocks pack made no $name-1.src.rock"
ok "luarocks pack $name-1.rockspec → $name-1.src.rock"
lr build --tree "$work/tree-src" "pack/$name-1.src.rock" >build-src.log 2>&1 || { tail -30 build-src.log; fail "luarocks build $name-1.src.rock"; }
installed_files "$work/tree-src" "luarocks build of the source rock"
ok "luarocks build $name-1.src.rock (outside the checkout)"

# The tarball, unpacked: luarocks make with the rockspec inside it.
tar xzf "$dist/$name.tar.gz"
[ -f "$name/$name-1.rockspec" ] || fail "the tarball has no $name/$name-1.rockspec"
grep -q "^version = \"$version\"" "$name/Cargo.toml" || fail "the tarball's Cargo.toml is not version $version"
(cd "$name" && lr make --tree "$work/tree-make" >../make.log 2>&1) || { tail -30 make.log; fail "luarocks make in the unpacked tarball"; }
installed_files "$work/tree-make" "luarocks make in the unpacked tarball"
ok "luarocks make in the unpacked $name.tar.gz"

# The binary rock.
rock=$(ls "$dist/rocks/$name-1."*.rock | grep -v '\.src\.rock$' | head -n 1)
[ -n "$rock" ] || fail "no binary rock in $dist/rocks"
platform=${rock##*/$name-1.}
platform=${platform%.rock}
mkdir bin && (cd bin && unzip -q "$rock")
for f in lua/mod_client_management.lua $(for lib in $libs; do echo "lua/$lib"; done) lib/client_management.so "$name-1.rockspec" rock_manifest; do
	[ -f "bin/$f" ] || fail "$rock has no $f"
done
if readelf -S bin/lib/client_management.so | grep -q '\.symtab'; then fail "the rock's library is not stripped"; fi
objdump -T bin/lib/client_management.so | grep -q ' luaopen_client_management$' || fail "the rock's library does not export luaopen_client_management"
need=$(objdump -T bin/lib/client_management.so | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[ "$(printf '%s\n%s\n' "$need" "$glibc_floor" | sort -V | tail -n 1)" = "$glibc_floor" ] \
	|| fail "the rock's library needs glibc $need, the README promises $glibc_floor: update README and this check"
ok "binary rock $platform: stripped, luaopen_client_management, needs glibc $need (README: >= $glibc_floor)"

# The rocks directory.
if ! lua5.4 - "$dist/rocks/manifest-5.4" "$version-1" "$platform" <<'LUA'
local env = {}; assert(loadfile(arg[1], "t", env))()
local v = env.repository and env.repository.mod_client_management and env.repository.mod_client_management[arg[2]]
assert(v, "mod_client_management " .. arg[2] .. " is not in the manifest")
local arches = {}; for _, e in ipairs(v) do arches[e.arch] = true end
assert(arches.src and arches[arg[3]], "the manifest lacks the src or the " .. arg[3] .. " rock")
LUA
then
	fail "rocks/manifest-5.4"
fi
ok "rocks/manifest-5.4 lists $name-1 (src, $platform)"
