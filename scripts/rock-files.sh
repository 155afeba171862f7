#!/usr/bin/env bash
# The rockspec's build step (luarocks make/build): builds the module (scripts/build-plugin.sh) and
# lays out what a rock installs in build/rock-files/: the Lua module, its libraries (*.lib.lua,
# each listed in the rockspec's install.lua) and the native library,
# stripped of symbols it does not need (the version marker and luaopen_* stay).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugin.sh
out=build/rock-files
rm -rf "$out"
mkdir -p "$out"
install -m 0644 build/plugin/mod_client_management/mod_client_management.lua "$out/"
install -m 0644 build/plugin/mod_client_management/*.lib.lua "$out/"
install -m 0755 build/plugin/mod_client_management/client_management.so "$out/"
strip --strip-unneeded "$out/client_management.so"
