#!/usr/bin/env bash
# Prints the project's version: the `version` of Cargo.toml's [package], the only place it is
# written. Rockspec and rock names, and the built Lua module, take it from here at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '
	/^\[/ { in_package = ($0 == "[package]") }
	in_package && /^version[ \t]*=/ { sub(/^version[ \t]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit }
' Cargo.toml)
[ -n "$version" ] || { echo "scripts/version.sh: no [package] version in Cargo.toml" >&2; exit 1; }
echo "$version"
