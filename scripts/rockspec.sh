#!/usr/bin/env bash
# Prints the rockspec of this version (rockspec/mod_client_management.rockspec.in, version from
# Cargo.toml). Its file name is mod_client_management-<version>-1.rockspec.
#   scripts/rockspec.sh [--url URL] [--md5 MD5]
# URL: where the source tarball (mod_client_management-<version>.tar.gz, `make dist`) is fetched
# from; default $DIST_URL/<tarball> when DIST_URL is set, else file://<repo>/build/dist/<tarball>.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(scripts/version.sh)
tarball="mod_client_management-$version.tar.gz"
url=""
md5=""
while [ "$#" -gt 0 ]; do
	case "$1" in
		--url) url=$2; shift 2 ;;
		--md5) md5=$2; shift 2 ;;
		*) echo "usage: $0 [--url URL] [--md5 MD5]" >&2; exit 2 ;;
	esac
done
if [ -z "$url" ]; then
	if [ -n "${DIST_URL:-}" ]; then url="${DIST_URL%/}/$tarball"; else url="file://$(pwd)/build/dist/$tarball"; fi
fi
md5_line=""
[ -z "$md5" ] || md5_line=$'\n'"	md5 = \"$md5\";"
# Plain text substitution (no sed special characters to worry about in URL).
template=$(cat rockspec/mod_client_management.rockspec.in)
template=${template//@VERSION@/$version}
template=${template//@SOURCE_URL@/$url}
template=${template//@SOURCE_MD5@/$md5_line}
printf '%s\n' "$template"
