#!/usr/bin/env bash
# Prints the project's version: Cargo.toml's [package] version, the one place it is written.
set -euo pipefail
cd "$(dirname "$0")/.."
sed -n '/^\[package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -n 1
