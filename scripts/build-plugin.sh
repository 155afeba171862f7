#!/usr/bin/env bash
# Lays out build/plugin/mod_client_management/: the Lua module (with the version written in),
# its libraries (lua/*.lib.lua, loaded with module:require) and the native core beside them, so
# any Prosody 13.0.x finds them all through plugin_paths.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(scripts/version.sh)
cargo build --release --features module
out=build/plugin/mod_client_management
mkdir -p "$out"
sed "s/@VERSION@/$version/" lua/mod_client_management.lua > "$out/mod_client_management.lua.tmp"
grep -q "local MODULE_VERSION = \"$version\";" "$out/mod_client_management.lua.tmp" \
	|| { echo "build-plugin.sh: the version was not written into the Lua module" >&2; exit 1; }
mv "$out/mod_client_management.lua.tmp" "$out/mod_client_management.lua"
chmod 0644 "$out/mod_client_management.lua"
rm -f "$out"/*.lib.lua
install -m 0644 lua/*.lib.lua "$out/"
install -m 0755 target/release/libclient_management.so "$out/client_management.so"
echo "plugin $version ready in $out"
