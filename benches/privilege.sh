#!/usr/bin/env bash
# The cost of the privilege split (issue 11), on loopback, as root:
#  - auto-allowed `hostname` round trip: BEFORE_BIN (binaries built before the split) vs the
#    current build, interleaved call by call (rt_pair);
#  - a privileged read `sudo ss -tlnp` through aiops (the agent hands it to aiops-exec) and,
#    for the floor, plain `sudo -n ss -tlnp` and `ss -tlnp` run locally.
# Usage: BEFORE_BIN=DIR bash benches/privilege.sh   (fleet.sh runs it as section 5)
# Env: RT_N (40), PRIV_PORT (30900), BIN (target/release).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/benches
RT_N=${RT_N:-40}
PRIV_PORT=${PRIV_PORT:-30900}
BIN=${BIN:-$REPO/target/release}
export RESULTS=${RESULTS:-/dev/null}
H() { python3 "$BENCH/fleet_helper.py" "$@"; }
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
command -v sudo >/dev/null || { echo "apt-get install sudo"; exit 1; }
for b in aiops aiops-agent aiops-exec; do
    [ -x "$BIN/$b" ] || { echo "$BIN/$b missing (cargo build --release --bins)"; exit 1; }
done
TMP=$(mktemp -d /tmp/aiops-priv-bench.XXXXXX)
cleanup() {
    set +e
    "$BIN/aiops" lab down --dir "$TMP/after" >/dev/null 2>&1
    [ -n "${BEFORE_BIN:-}" ] && "$BEFORE_BIN/aiops" lab down --dir "$TMP/before" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN/aiops" lab init --dir "$TMP/after" --agents 1 --port "$PRIV_PORT" >/dev/null
"$BIN/aiops" lab up --dir "$TMP/after" >/dev/null
req='{"target":"srv1","command":"hostname","requester":"bench","reason":"bench"}'
ss_req='{"target":"srv1","command":"sudo ss -tlnp","requester":"bench","reason":"bench"}'
after=(env AIOPS_CONFIG="$TMP/after/config.yml" "$BIN/aiops" run)
status=$(printf '%s' "$ss_req" | "${after[@]}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])')
[ "$status" = executed ] || { echo "sudo ss -tlnp through aiops: $status"; exit 1; }
if [ -n "${BEFORE_BIN:-}" ]; then
    "$BEFORE_BIN/aiops" lab init --dir "$TMP/before" --agents 1 --port "$((PRIV_PORT + 1))" >/dev/null
    "$BEFORE_BIN/aiops" lab up --dir "$TMP/before" >/dev/null
    before=(env AIOPS_CONFIG="$TMP/before/config.yml" "$BEFORE_BIN/aiops" run)
    STDIN_TEXT=$req STDIN_TEXT_B=$req H rt_pair hostname_after hostname_before "$((RT_N * 2))" -- \
        "${after[@]}" -- "${before[@]}"
else
    STDIN_TEXT=$req H rt hostname_after "$RT_N" 3 -- "${after[@]}"
fi
STDIN_TEXT=$ss_req H rt priv_ss_via_executor "$RT_N" 3 -- "${after[@]}"
H rt plain_sudo_ss "$RT_N" 3 -- sudo -n ss -tlnp
H rt plain_ss "$RT_N" 3 -- ss -tlnp
