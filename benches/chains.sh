#!/usr/bin/env bash
# The cost of the cross-anchored, signed audit chains (issue 13) on the auto-allowed
# `hostname` round trip, on loopback: BEFORE_BIN (binaries without them) vs the current
# build, interleaved call by call (rt_pair). After: the request carries the controller head
# (the write-ahead record is appended before signing), each batch's last record is
# signed (Ed25519), the agent hashes the output it sends and signs a receipt, and the
# controller verifies it against the pinned key. Prints both medians and the load.
# Usage: BEFORE_BIN=DIR nice -n -15 bash benches/chains.sh
# Env: RT_N (60 pairs), CHAINS_PORT (31750), BIN (target/release).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/benches
RT_N=${RT_N:-60}
CHAINS_PORT=${CHAINS_PORT:-31750}
BIN=${BIN:-$REPO/target/release}
export RESULTS=${RESULTS:-/dev/null}
H() { python3 "$BENCH/fleet_helper.py" "$@"; }
[ -n "${BEFORE_BIN:-}" ] || { echo "set BEFORE_BIN to a directory with the old aiops, aiops-agent, aiops-exec"; exit 1; }
for b in aiops aiops-agent aiops-exec; do
    [ -x "$BIN/$b" ] || { echo "$BIN/$b missing (cargo build --release --bins)"; exit 1; }
    [ -x "$BEFORE_BIN/$b" ] || { echo "$BEFORE_BIN/$b missing"; exit 1; }
done
TMP=$(mktemp -d /tmp/aiops-chains-bench.XXXXXX)
cleanup() {
    set +e
    "$BIN/aiops" lab down --dir "$TMP/after" >/dev/null 2>&1
    "$BEFORE_BIN/aiops" lab down --dir "$TMP/before" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN/aiops" lab init --dir "$TMP/after" --agents 1 --port "$CHAINS_PORT" >/dev/null
"$BIN/aiops" lab up --dir "$TMP/after" >/dev/null
"$BEFORE_BIN/aiops" lab init --dir "$TMP/before" --agents 1 --port "$((CHAINS_PORT + 1))" >/dev/null
"$BEFORE_BIN/aiops" lab up --dir "$TMP/before" >/dev/null
req='{"target":"srv1","command":"hostname","requester":"bench","reason":"bench"}'
after=(env AIOPS_CONFIG="$TMP/after/config.yml" "$BIN/aiops" run)
before=(env AIOPS_CONFIG="$TMP/before/config.yml" "$BEFORE_BIN/aiops" run)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
STDIN_TEXT=$req STDIN_TEXT_B=$req H rt_pair hostname_chains hostname_before "$RT_N" -- \
    "${after[@]}" -- "${before[@]}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The receipts verified and the cross-check holds on the measured lab.
grep -c '"receipt_status":"verified"' "$TMP/after/audit.jsonl" | sed 's/^/verified receipts: /'
env AIOPS_CONFIG="$TMP/after/config.yml" "$BIN/aiops" audit verify --targets \
    | python3 -c 'import json,sys; v=json.load(sys.stdin); print("verify --targets:", v["status"], v["targets"][0]["agent_heads_checked"], "heads")'
