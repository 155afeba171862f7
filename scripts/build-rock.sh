#!/usr/bin/env bash
# `make rock`: a binary rock (Lua module + prebuilt native core) for `prosodyctl install`,
# which runs as the prosody user without a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
rockspec=rockspec/mod_client_management-0.1.0-1.rockspec
luarocks make --lua-version=5.4 --tree "$tree" "$rockspec" >/dev/null
mkdir -p build/rock
(cd build/rock && luarocks pack --lua-version=5.4 --tree "$tree" mod_client_management >/dev/null)
ls build/rock/*.rock
