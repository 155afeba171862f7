#!/usr/bin/env bash
# The end-to-end suite once per storage backend, one after the other (`make test-e2e-all`):
#   tests/e2e/run-all.sh [run.sh arguments, e.g. test/revoke.test.js]
# E2E_STORAGES="internal sqlite postgres memory" (the default) picks the backends. Each run's
# output goes to the terminal and to build/e2e-logs/<storage>.log; a summary per backend (and the
# reason of every skipped test) comes at the end. Exit status 1 when any run failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
storages=${E2E_STORAGES:-internal sqlite postgres memory}
logs="$repo/build/e2e-logs"
mkdir -p "$logs"

failed=()
summary=()
for storage in $storages; do
	echo "=== e2e on $storage storage"
	start=$(date +%s)
	E2E_STORAGE=$storage "$here/run.sh" "$@" 2>&1 | tee "$logs/$storage.log"
	status=${PIPESTATUS[0]}
	secs=$(( $(date +%s) - start ))
	count() { grep -E "^(# |ℹ )$1 [0-9]+" "$logs/$storage.log" | tail -n 1 | awk '{print $3}'; }
	line=$(printf '%-9s %s  tests %s, pass %s, fail %s, cancelled %s, skipped %s, todo %s  (%ss)' \
		"$storage" "$([ "$status" -eq 0 ] && echo ok || echo FAILED)" \
		"$(count tests)" "$(count pass)" "$(count fail)" "$(count cancelled)" "$(count skipped)" "$(count todo)" "$secs")
	summary+=("$line")
	while IFS= read -r skipped; do
		summary+=("          skipped: ${skipped#*ok [0-9]* - }")
	done < <(grep -E '^ *ok [0-9]+ - .* # SKIP' "$logs/$storage.log")
	[ "$status" -eq 0 ] || failed+=("$storage")
done

echo
echo "=== e2e summary (logs in $logs/)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED on: ${failed[*]}" >&2
	exit 1
fi
