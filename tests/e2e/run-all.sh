#!/usr/bin/env bash
# The end-to-end suite once per storage backend, one after the other (`make test-e2e-all`):
#   tests/e2e/run-all.sh [run.sh arguments, e.g. test/revoke.test.js]
# E2E_STORAGES="internal sqlite postgres memory" (the default) picks the backends. Each run's
# output goes to the terminal and to build/e2e-logs/<storage>.log; a summary per backend (with the
# Prosody version the servers reported, and the reason of every skipped test) comes at the end.
# Exit status 1 when any run failed.
#
# E2E_PROSODY picks the Prosody:
#   installed (default)  prosody/prosodyctl from PATH, or PROSODY/PROSODYCTL;
#   trunk                scripts/build-trunk.sh builds (once per tarball) Prosody trunk from
#                        TRUNK_TARBALL (default ../shared/prosody-trunk/*.tar.gz) and the runs use
#                        it, with only mod_sasl2* of prosody-modules beside it (`make test-trunk`);
#                        E2E_STORAGES defaults to internal, logs are build/e2e-logs/trunk-<storage>.log
#                        and the captures go to build/e2e-captures-trunk/.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
logs="$repo/build/e2e-logs"
mkdir -p "$logs"

case "${E2E_PROSODY:-installed}" in
installed)
	storages=${E2E_STORAGES:-internal sqlite postgres memory}
	prefix=""
	expected=$("${PROSODYCTL:-prosodyctl}" about 2>/dev/null | sed -n '1s/^Prosody //p')
	;;
trunk)
	storages=${E2E_STORAGES:-internal}
	prefix="trunk-"
	trunk_dir=$("$repo/scripts/build-trunk.sh") || exit 1
	set -a
	# shellcheck disable=SC1091 # PROSODY, PROSODYCTL, E2E_EXTRA_PLUGIN_PATHS, TRUNK_VERSION
	. "$trunk_dir/env"
	set +a
	expected=$TRUNK_VERSION
	export CAM_CAPTURE_DIR=build/e2e-captures-trunk/cam ADHOC_CAPTURE_DIR=build/e2e-captures-trunk/adhoc
	;;
*)
	echo "run-all.sh: E2E_PROSODY=${E2E_PROSODY}: expected installed or trunk" >&2
	exit 2
	;;
esac
# test/prosody.test.js checks that every server of the run reports this version.
export E2E_EXPECT_PROSODY_VERSION=${expected:-}
echo "=== Prosody ${expected:-(version unknown)} ($(command -v "${PROSODY:-prosody}"))"

failed=()
summary=()
for storage in $storages; do
	echo "=== e2e on $storage storage, Prosody ${expected:-?}"
	log="$logs/$prefix$storage.log"
	start=$(date +%s)
	E2E_STORAGE=$storage "$here/run.sh" "$@" 2>&1 | tee "$log"
	status=${PIPESTATUS[0]}
	secs=$(( $(date +%s) - start ))
	count() { grep -E "^(# |ℹ )$1 [0-9]+" "$log" | tail -n 1 | awk '{print $3}'; }
	# What the servers said they are (test/prosody.test.js), else what prosodyctl said.
	reported=$(grep -Eo 'Prosody under test: [^ ]+' "$log" | tail -n 1 | awk '{print $4}')
	line=$(printf '%-9s %-26s %s  tests %s, pass %s, fail %s, cancelled %s, skipped %s, todo %s  (%ss)' \
		"$storage" "Prosody ${reported:-${expected:-?}}" "$([ "$status" -eq 0 ] && echo ok || echo FAILED)" \
		"$(count tests)" "$(count pass)" "$(count fail)" "$(count cancelled)" "$(count skipped)" "$(count todo)" "$secs")
	summary+=("$line")
	while IFS= read -r skipped; do
		summary+=("          skipped: ${skipped#*ok [0-9]* - }")
	done < <(grep -E '^ *ok [0-9]+ - .* # SKIP' "$log")
	[ "$status" -eq 0 ] || failed+=("$prefix$storage")
done

echo
echo "=== e2e summary (logs in $logs/)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED on: ${failed[*]}" >&2
	exit 1
fi
