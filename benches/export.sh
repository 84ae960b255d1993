#!/usr/bin/env bash
# Audit export: records/s to a real rsyslog over TLS (RFC 5425) and to an OTLP/HTTP receiver,
# and what a running exporter adds to `aiops run` (it should add nothing: it is another process
# reading the file). Loopback only. Prints numbers; the lead copies them into BENCHMARKS.md.
# Usage: bash benches/export.sh   Env: EXPORT_N (records, 20000), RUN_N (aiops run pairs, 40),
#        AIOPS (binary, target/release/aiops if built, else target/debug/aiops), PORT (31100).
# Needs: rsyslog rsyslog-gnutls (Debian), python3 with opentelemetry-proto (PyPI).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
EXPORT_N=${EXPORT_N:-20000}
RUN_N=${RUN_N:-40}
PORT=${PORT:-31100}
if [ -z "${AIOPS:-}" ]; then
  AIOPS=$REPO/target/release/aiops
  if [ ! -x "$AIOPS" ] || ! "$AIOPS" audit export --help >/dev/null 2>&1; then AIOPS=$REPO/target/debug/aiops; fi
fi
"$AIOPS" audit export --help >/dev/null || { echo "no aiops with audit export at $AIOPS (cargo build -p aiops-controller)"; exit 1; }
TMP=$(mktemp -d /tmp/aiops-export-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; "$AIOPS" lab down --dir "$TMP/lab" >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "binary: $AIOPS"
"$AIOPS" lab init --dir "$TMP/lab" --agents 1 --port "$PORT" >/dev/null
PKI=$TMP/lab/pki
"$AIOPS" certs issue-agent rsyslog.lab --ip 127.0.0.1 --dir "$PKI" >/dev/null
python3 "$REPO/benches/export_gen.py" "$TMP/bench.jsonl" "$EXPORT_N"
echo "records: $EXPORT_N ($(du -k "$TMP/bench.jsonl" | cut -f1) KiB)"

# rsyslog over TLS, Direct queue: each message is in the file before the next is read.
SYSLOG_PORT=$((PORT + 10))
mkdir -p "$TMP/rs/work"
cat >"$TMP/rs/rsyslog.conf" <<CONF
global(workDirectory="$TMP/rs/work" maxMessageSize="256k" defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="$PKI/ca.pem"
       defaultNetstreamDriverCertFile="$PKI/agents/rsyslog.lab.pem"
       defaultNetstreamDriverKeyFile="$PKI/agents/rsyslog.lab.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="a" queue.type="Direct") { action(type="omfile" file="$TMP/rs/out.log") }
input(type="imtcp" port="$SYSLOG_PORT" address="127.0.0.1" ruleset="a")
CONF
/usr/sbin/rsyslogd -n -f "$TMP/rs/rsyslog.conf" -i "$TMP/rs/pid" 2>"$TMP/rs/err" &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$SYSLOG_PORT) 2>/dev/null && break; sleep 0.1; done

python3 "$REPO/tests/py/otlp_receiver.py" --out "$TMP/otlp.jsonl" --port-file "$TMP/otlp.port" &
PIDS+=($!)
for _ in $(seq 100); do [ -f "$TMP/otlp.port" ] && break; sleep 0.1; done
OTLP_PORT=$(cat "$TMP/otlp.port")

export_once() { # NAME SINK_YAML
  cat >"$TMP/$1.yml" <<YML
audit_log: $TMP/bench.jsonl
state_dir: $TMP/state-$1
batch_max: 500
sinks:
$2
YML
  local t0 t1; t0=$(ms)
  "$AIOPS" audit export --once --export-config "$TMP/$1.yml"
  t1=$(ms)
  echo "$1: $EXPORT_N records in $((t1 - t0)) ms = $(( EXPORT_N * 1000 / (t1 - t0 + 1) )) records/s"
}
export_once syslog "  - {type: syslog_tls, name: rs, address: '127.0.0.1:$SYSLOG_PORT', server_name: rsyslog.lab, ca: '$PKI/ca.pem'}"
echo "  rsyslog wrote $(wc -l <"$TMP/rs/out.log") lines"
export_once otlp "  - {type: otlp_http, name: otel, endpoint: 'http://127.0.0.1:$OTLP_PORT/v1/logs'}"
echo "  receiver decoded $(wc -l <"$TMP/otlp.jsonl") records (the Python receiver decodes and writes every record: it bounds this figure)"

# aiops run with and without a running exporter (to OTLP), interleaved so drift hits both.
"$AIOPS" lab up --dir "$TMP/lab" >/dev/null
export AIOPS_CONFIG=$TMP/lab/config.yml
cat >"$TMP/lab/export.yml" <<YML
state_dir: $TMP/state-run
poll_ms: 20
sinks:
  - {type: otlp_http, name: otel, endpoint: 'http://127.0.0.1:$OTLP_PORT/v1/logs'}
YML
REQ='{"target":"srv1","command":"hostname","requester":"bench","reason":"export latency"}'
one() { local t0 t1; t0=$(date +%s%N); echo "$REQ" | "$AIOPS" run >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 )); }
for _ in 1 2 3; do one >/dev/null; done
# One exporter runs throughout; for the "without" half of each pair it is stopped (SIGSTOP).
"$AIOPS" audit export --export-config "$TMP/lab/export.yml" 2>/dev/null &
EXP=$!
PIDS+=("$EXP")
: >"$TMP/off"; : >"$TMP/on"
for _ in $(seq "$RUN_N"); do
  kill -STOP "$EXP"
  one >>"$TMP/off"
  kill -CONT "$EXP"
  sleep 0.1   # it ships the pair's records meanwhile
  one >>"$TMP/on"
done
sleep 0.5
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p90() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int(NR*0.9)]}'; }
echo "aiops run hostname, $RUN_N interleaved pairs: exporter stopped median $(med "$TMP/off") us p90 $(p90 "$TMP/off") us; with a running exporter median $(med "$TMP/on") us p90 $(p90 "$TMP/on") us"
"$AIOPS" audit export --status --export-config "$TMP/lab/export.yml" | python3 -c "import json,sys; s=json.load(sys.stdin)['sinks'][0]; print(f\"exporter after the run: backlog {s['backlog']}, exported {s['exported_total']}\")"
