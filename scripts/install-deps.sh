#!/usr/bin/env bash
# Installs what the build, the tests and `make run` need on Debian bookworm, skipping what is there:
# Prosody 13 and prosody-modules (bookworm-backports), Lua 5.4, luarocks, busted, for the
# storage backends of the end-to-end suite LuaDBI (SQLite3, PostgreSQL) and a PostgreSQL server,
# Chromium for the web page's browser tests (tests/e2e/test/web.test.js drives it with
# playwright-core), and what scripts/build-trunk.sh needs to build Prosody trunk for
# `make test-trunk` (a C compiler, make, the headers of libidn2, OpenSSL and ICU, Prosody's Lua
# libraries).
#
# It never stops, restarts or reconfigures a Prosody (or PostgreSQL) it did not install: while it
# installs packages, a temporary /usr/sbin/policy-rc.d (only when there is none) keeps the packages'
# services from being started; it is removed afterwards. An installed Prosody of another version is
# left alone: the script stops and says what to do.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

need_apt=()
for pkg in lua5.4 liblua5.4-dev luarocks lua-busted pkg-config binutils lua-dbi-sqlite3 lua-dbi-postgresql \
	chromium openssl gcc make libidn2-dev libssl-dev libicu-dev lua-expat lua-socket lua-filesystem lua-sec lua-unbound; do
	installed "$pkg" || need_apt+=("$pkg")
done
# Any PostgreSQL server (initdb) will do: tests/e2e/with-postgres.sh runs a throwaway cluster.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	need_apt+=(postgresql)
fi

need_backports=()
if ! installed prosody; then
	need_backports+=(prosody prosody-modules)
elif ! dpkg-query -W -f='${Version}' prosody | grep -q '^13\.'; then
	version=$(dpkg-query -W -f='${Version}' prosody)
	if [ -n "${PROSODY:-}" ]; then
		echo "install-deps: the installed Prosody package is $version; using PROSODY=$PROSODY instead" >&2
	else
		cat >&2 <<MSG
install-deps: Prosody $version is installed; this project needs Prosody 13.0.x.
  This script does not upgrade (or restart) an installed Prosody. Either upgrade it yourself:
    apt-get install -t bookworm-backports prosody prosody-modules
  or point the tests at another build: PROSODY=/path/to/prosody PROSODYCTL=/path/to/prosodyctl
MSG
		exit 1
	fi
elif ! installed prosody-modules; then
	# Prosody 13 is there; prosody-modules does not restart it.
	need_backports+=(prosody-modules)
fi

[ ${#need_apt[@]} -gt 0 ] || [ ${#need_backports[@]} -gt 0 ] || exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Keep the packages' services (prosody, postgresql) from starting while they are installed: the
# tests and `make run` start their own instances. Only when no policy exists, removed afterwards.
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d} # (POLICY_RC_D: for testing this script)
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# Temporary, from scripts/install-deps.sh: no service starts during this install.\nexit 101\n' \
		| $SUDO tee "$policy" >/dev/null
	$SUDO chmod 0755 "$policy"
	trap '$SUDO rm -f "$policy"' EXIT
fi

apt_install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@"; }

if [ ${#need_backports[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	uri=${uri:-http://deb.debian.org/debian}
	echo "deb $uri bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
$SUDO apt-get update -q
[ ${#need_apt[@]} -eq 0 ] || apt_install "${need_apt[@]}"
[ ${#need_backports[@]} -eq 0 ] || apt_install -t bookworm-backports "${need_backports[@]}"
