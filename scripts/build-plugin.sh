#!/usr/bin/env bash
# Lays out build/plugin/mod_client_management/: the Lua module with the native core beside it,
# so any Prosody 13.0.x finds both through plugin_paths.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features module
out=build/plugin/mod_client_management
mkdir -p "$out"
install -m 0644 lua/mod_client_management.lua "$out/mod_client_management.lua"
install -m 0755 target/release/libclient_management.so "$out/client_management.so"
echo "plugin ready in $out"
