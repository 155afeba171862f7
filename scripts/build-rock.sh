#!/usr/bin/env bash
# `make rock`: a binary rock (Lua module + prebuilt native core, stripped) for `prosodyctl install`,
# which runs as the prosody user without a Rust toolchain:
#   build/rock/mod_client_management-<version>-1.<platform>.rock   (platform: linux-x86_64 here)
# The rockspec packed inside is scripts/rockspec.sh's (ROCKSPEC=path uses that one instead).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(scripts/version.sh)
mkdir -p build/rock
rockspec=${ROCKSPEC:-build/rock/mod_client_management-$version-1.rockspec}
[ -n "${ROCKSPEC:-}" ] || scripts/rockspec.sh > "$rockspec"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
luarocks make --lua-version=5.4 --tree "$tree" "$rockspec" >"$tree.log" 2>&1 \
	|| { cat "$tree.log" >&2; rm -f "$tree.log"; exit 1; }
rm -f "$tree.log" build/rock/mod_client_management-*.rock
(cd build/rock && luarocks pack --lua-version=5.4 --tree "$tree" mod_client_management "$version-1" >/dev/null)
ls build/rock/mod_client_management-"$version"-1.*.rock
