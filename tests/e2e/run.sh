#!/usr/bin/env bash
# End-to-end tests of mod_client_management against a real Prosody 13.
# Usage: tests/e2e/run.sh [node --test arguments, e.g. test/revoke.test.js]
# E2E_STORAGE=internal|sqlite|postgres|memory picks the storage backend (default internal);
# postgres runs the tests inside a throwaway cluster (with-postgres.sh).
# Does not build the module: `make plugin` (or `make test-e2e`) does that first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
plugin_dir="${E2E_PLUGIN_DIR:-$repo/build/plugin}"
module="$plugin_dir/mod_client_management/mod_client_management.lua"

fail() { echo "tests/e2e/run.sh: $*" >&2; exit 2; }

[ -f "$module" ] || fail "$module is missing: build the module first (make plugin)"
# PROSODY / PROSODYCTL: the binaries to test (e.g. a trunk build); default from PATH.
for tool in "${PROSODY:-prosody}" "${PROSODYCTL:-prosodyctl}" node npm; do
	command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found (scripts/install-deps.sh installs Prosody; Node.js >= 20 is needed)"
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
	|| fail "Node.js >= 20 is needed, found $(node --version)"

# PostgreSQL storage: run inside a throwaway cluster unless one is given.
if [ "${E2E_STORAGE:-internal}" = postgres ] && [ -z "${E2E_PG_HOST:-}" ]; then
	exec "$here/with-postgres.sh" "$here/run.sh" "$@"
fi

cd "$here"
# Install exactly what the lock file says, again whenever it changes.
stamp=node_modules/.e2e-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json "$stamp"
fi

if [ "$#" -eq 0 ]; then
	set -- test/*.test.js
fi
exec node --test "$@"
