#!/usr/bin/env bash
# Installs what the build, the tests and `make run` need on Debian bookworm, skipping what is there.
set -euo pipefail

need_apt=()
for pkg in prosody prosody-modules lua5.4 liblua5.4-dev luarocks lua-busted pkg-config; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
# Prosody must be 13.x from bookworm-backports, not bookworm's 0.12.
if ! dpkg-query -W -f='${Version}' prosody 2>/dev/null | grep -q '^13\.'; then
	need_apt+=(prosody prosody-modules)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
		uri=${uri:-http://deb.debian.org/debian}
		echo "deb $uri bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
	fi
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q lua5.4 liblua5.4-dev luarocks lua-busted pkg-config
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t bookworm-backports prosody prosody-modules
	# The packaged service is not ours: tests and `make run` start their own instance.
	$SUDO systemctl disable --now prosody >/dev/null 2>&1 || true
	$SUDO /etc/init.d/prosody stop >/dev/null 2>&1 || true
	$SUDO pkill -u prosody -x lua5.4 >/dev/null 2>&1 || true
fi
