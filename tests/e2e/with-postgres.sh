#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster, stopped and deleted afterwards (also on
# failure or Ctrl-C):
#   tests/e2e/with-postgres.sh COMMAND [ARGS...]
# The cluster lives in a temp dir (data, log, unix socket), listens on no TCP port (only on the
# socket "<dir>/socket/.s.PGSQL.<port>"), trusts local connections and has a role that may create
# databases; the e2e harness makes one database per Prosody it starts. COMMAND gets:
#   E2E_PG_HOST   socket directory (libpq/LuaDBI "host")
#   E2E_PG_PORT   port (names the socket; default 5432, or E2E_PG_PORT if set)
#   E2E_PG_USER   role to connect as (prosody_e2e)
#   E2E_PG_BINDIR PostgreSQL binaries (psql)
# As root, the cluster runs as the `postgres` user. PG_BINDIR picks the binaries (default: the
# newest /usr/lib/postgresql/*/bin); KEEP_E2E=1 keeps the directory (the cluster is stopped anyway).
set -euo pipefail

[ "$#" -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] \
	|| { echo "with-postgres.sh: no PostgreSQL server found (scripts/install-deps.sh installs one, or set PG_BINDIR)" >&2; exit 2; }

port=${E2E_PG_PORT:-5432}
role=prosody_e2e
base=$(mktemp -d "${TMPDIR:-/tmp}/e2e-postgres.XXXXXX")
chmod 0755 "$base"
mkdir -m 0755 "$base/socket"

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || { echo "with-postgres.sh: running as root but there is no 'postgres' user" >&2; exit 2; }
	chown -R postgres: "$base"
	as_pg=(runuser -u postgres --)
fi

started=""
cleanup() {
	if [ -n "$started" ]; then
		"${as_pg[@]}" "$bindir/pg_ctl" -D "$base/data" -m immediate -w stop >/dev/null 2>&1 \
			|| echo "with-postgres.sh: pg_ctl stop failed; see $base/postgres.log" >&2
	fi
	if [ "${KEEP_E2E:-}" = 1 ]; then
		echo "with-postgres.sh: kept $base" >&2
	else
		rm -rf "$base"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cd: the postgres user cannot always read the caller's working directory.
(cd "$base" && "${as_pg[@]}" "$bindir/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$base/initdb.log" 2>&1) \
	|| { cat "$base/initdb.log" >&2; echo "with-postgres.sh: initdb failed" >&2; exit 1; }
started=1
# No TCP, the socket in our dir, no durability (a test database).
(cd "$base" && "${as_pg[@]}" "$bindir/pg_ctl" -D "$base/data" -l "$base/postgres.log" -w -t 30 \
	-o "-c listen_addresses= -k $base/socket -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
	start >/dev/null) \
	|| { cat "$base/postgres.log" >&2; echo "with-postgres.sh: PostgreSQL did not start" >&2; exit 1; }
"$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$base/socket" -p "$port" -U postgres -d postgres \
	-c "CREATE ROLE $role LOGIN CREATEDB" >/dev/null

export E2E_PG_HOST="$base/socket" E2E_PG_PORT="$port" E2E_PG_USER="$role" E2E_PG_BINDIR="$bindir"
echo "with-postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $E2E_PG_HOST (port $port), role $role" >&2
status=0
"$@" || status=$?
exit "$status"
