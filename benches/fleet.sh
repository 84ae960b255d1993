#!/usr/bin/env bash
# aiops vs ssh / ControlMaster / a Python ssh wrapper / Ansible, on loopback only.
# Usage: bash benches/fleet.sh            (run as root from the repo root or anywhere)
# Env: RT_N (round trips per tool, 40), FANOUT_REPS (5), ANSIBLE_CAP_500 (seconds, 1500),
#      STREAM_BYTES (1000000000), SSH_PORT (30022), LAB_PORT (30100),
#      FLEET_PORT (30200), BENCH_SIZES (fan-out sizes, "1 10 100 500"; the fleet lab
#      has as many agents as the largest, e.g. BENCH_SIZES=1 for a quick round-trip run),
#      BEFORE_BIN (a directory with aiops/aiops-agent built before the privilege split,
#      for section 5's before/after), BEFORE_WAL_BIN / BEFORE_CHAINS_BIN (binaries from
#      before the write-ahead record / before the signed chains, for section 6: issue 13's
#      +1 ms budget, see benches/overhead.sh).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/benches
RT_N=${RT_N:-40}
FANOUT_REPS=${FANOUT_REPS:-5}
ANSIBLE_CAP_500=${ANSIBLE_CAP_500:-1500}
STREAM_BYTES=${STREAM_BYTES:-1000000000}
SSH_PORT=${SSH_PORT:-30022}
LAB_PORT=${LAB_PORT:-30100}
FLEET_PORT=${FLEET_PORT:-30200}
read -r -a SIZES <<<"${BENCH_SIZES:-1 10 100 500}"   # BENCH_SIZES="1 10" for a quick check
# The fleet lab has as many agents as the largest size asked for (500 by default).
FLEET_N=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -1)

[ "$(id -u)" = 0 ] || { echo "run as root (private sshd as root, apt)"; exit 1; }

TMP=$(mktemp -d /tmp/aiops-bench.XXXXXX)
export RESULTS=$TMP/results.txt
: >"$RESULTS"
AIOPS=$REPO/target/release/aiops
SSHD_PID=
CM_SOCK=$TMP/cm.sock

# The ssh side logs in as a throwaway user whose login shell is /bin/sh with no
# rc files: root's ~/.bashrc on a developer machine (pyenv, conda...) can add
# 100+ ms to every ssh session, which would flatter aiops.
BENCH_USER=aiopsbench
BENCH_HOME=/tmp/aiopsbench-home

cleanup() {
    set +e
    pkill -u "$BENCH_USER" 2>/dev/null
    id "$BENCH_USER" >/dev/null 2>&1 && userdel "$BENCH_USER" 2>/dev/null
    rm -rf "$BENCH_HOME"
    [ -x "$AIOPS" ] && for d in "$TMP/lab1" "$TMP/fleet"; do
        [ -d "$d" ] && "$AIOPS" lab down --dir "$d" >/dev/null 2>&1
    done
    [ -S "$CM_SOCK" ] && ssh -S "$CM_SOCK" -O exit x >/dev/null 2>&1
    [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\n== %s\n' "$*" >&2; }
H() { python3 "$BENCH/fleet_helper.py" "$@"; }

# --- what we compare against -------------------------------------------------
need=()
command -v /usr/sbin/sshd >/dev/null || need+=(openssh-server)
command -v ansible >/dev/null || need+=(ansible-core)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi

log "machine"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)" | tee -a "$RESULTS"
echo "nproc $(nproc)" | tee -a "$RESULTS"
echo "mem_total $(awk '/MemTotal/{printf "%.1fGiB", $2/1048576}' /proc/meminfo)" | tee -a "$RESULTS"
echo "kernel $(uname -r)" | tee -a "$RESULTS"
echo "rev $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . ':!benches' ':!BENCHMARKS.md' || echo +dirty-worktree)" | tee -a "$RESULTS"

log "cargo build --release --bins"
(cd "$REPO" && cargo build --release --bins --quiet)

# Wait (up to ~10 min) for the 1-minute load to drop below 1.5; record what it was.
LOAD_WAIT_TRIES=${LOAD_WAIT_TRIES:-20}
for i in $(seq 1 "$LOAD_WAIT_TRIES"); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" 'BEGIN{exit !(l < 1.5)}' && break
    [ "$i" = "$LOAD_WAIT_TRIES" ] && break
    echo "load $load >= 1.5, waiting 30 s ($i/$LOAD_WAIT_TRIES)" >&2
    sleep 30
done
echo "load_at_start $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"

# --- private sshd on loopback -----------------------------------------------
log "private sshd on 127.0.0.1:$SSH_PORT"
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$TMP/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$TMP/client_key"
id "$BENCH_USER" >/dev/null 2>&1 || useradd -M -d "$BENCH_HOME" -s /bin/sh "$BENCH_USER"
# Not locked (sshd without PAM refuses locked accounts), no password, no rc files.
usermod -p '*' -d "$BENCH_HOME" -s /bin/sh "$BENCH_USER"
mkdir -p "$BENCH_HOME/.ssh"
cp "$TMP/client_key.pub" "$BENCH_HOME/.ssh/authorized_keys"
chown -R "$BENCH_USER" "$BENCH_HOME" && chmod 700 "$BENCH_HOME" "$BENCH_HOME/.ssh"
echo "ssh_user $BENCH_USER shell=$(getent passwd "$BENCH_USER" | cut -d: -f7) home=$BENCH_HOME (no rc files)" | tee -a "$RESULTS"
cat >"$TMP/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $TMP/host_key
AuthorizedKeysFile .ssh/authorized_keys
PidFile $TMP/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
MaxStartups 1000
MaxSessions 1000
MaxAuthTries 3
UseDNS no
LogLevel ERROR
EOF
/usr/sbin/sshd -f "$TMP/sshd_config" -D -E "$TMP/sshd.log" &
SSHD_PID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$SSH_PORT") 2>/dev/null && break; sleep 0.1; done
# ssh takes the first value of an option: the ControlMaster/ControlPath pair comes first.
SSH_BASE=(-F /dev/null -i "$TMP/client_key" -p "$SSH_PORT" -o BatchMode=yes
     -o StrictHostKeyChecking=no -o UserKnownHostsFile="$TMP/known_hosts" -o LogLevel=ERROR)
SSH=(ssh -o ControlMaster=no -o ControlPath=none "${SSH_BASE[@]}")
SSH_CM=(ssh -o ControlMaster=no -o ControlPath="$CM_SOCK" "${SSH_BASE[@]}")
"${SSH[@]}" $BENCH_USER@127.0.0.1 true

# --- labs ----------------------------------------------------------------------
log "labs: lab1 (2 agents at $LAB_PORT) and fleet ($FLEET_N agents at $FLEET_PORT)"
"$AIOPS" lab init --dir "$TMP/lab1" --agents 2 --port "$LAB_PORT" >/dev/null
# srv2 of lab1 may send up to 2 GiB per stream (the end-to-end save_output run only).
echo "max_output_cap_bytes: 2147483648" >>"$TMP/lab1/agents/srv2/agent.yml"
echo "max_timeout_secs: 600" >>"$TMP/lab1/agents/srv2/agent.yml"
sed -e 's/output_cap_bytes: 65536/output_cap_bytes: 65536\n  saved_output_cap_bytes: 2147483648/' \
    -e 's/timeout_secs: 30/timeout_secs: 300/' \
    -e 's#^audit_log: audit.jsonl#audit_log: audit-save.jsonl#' \
    "$TMP/lab1/config.yml" >"$TMP/lab1/config-save.yml"
sed -i 's/timeout_secs: 30/timeout_secs: 300/' "$TMP/lab1/config.yml"
"$AIOPS" lab up --dir "$TMP/lab1" >/dev/null
"$AIOPS" lab init --dir "$TMP/fleet" --agents "$FLEET_N" --port "$FLEET_PORT" >/dev/null
sed -i 's/timeout_secs: 30/timeout_secs: 300/' "$TMP/fleet/config.yml"
"$AIOPS" lab up --dir "$TMP/fleet" >/dev/null
AGENT1_PID=$(cat "$TMP/lab1/agents/srv1/agent.pid")
AGENT2_PID=$(cat "$TMP/lab1/agents/srv2/agent.pid")
sleep 1
echo "agent_idle_rss_kib $(awk '/VmRSS/{print $2}' /proc/"$AGENT1_PID"/status)" | tee -a "$RESULTS"

# --- 1. round trip of `hostname` ---------------------------------------------
log "1. round trip (hostname), $RT_N runs each after 3 warm-ups"
req='{"target":"srv1","command":"hostname","requester":"bench","reason":"bench"}'
STDIN_TEXT=$req H rt aiops "$RT_N" 3 -- env AIOPS_CONFIG="$TMP/lab1/config.yml" "$AIOPS" run
H rt ssh_fresh "$RT_N" 3 -- "${SSH[@]}" $BENCH_USER@127.0.0.1 hostname
ssh -o ControlMaster=yes -o ControlPath="$CM_SOCK" -o ControlPersist=yes "${SSH_BASE[@]}" -fN $BENCH_USER@127.0.0.1
"${SSH_CM[@]}" -O check $BENCH_USER@127.0.0.1 2>&1 | grep -q 'Master running' || { echo "ControlMaster did not start"; exit 1; }
H rt ssh_cm "$RT_N" 3 -- "${SSH_CM[@]}" $BENCH_USER@127.0.0.1 hostname
# The two closest: interleaved call by call, so drift in the machine's load hits both alike.
STDIN_TEXT=$req H rt_pair pair_aiops pair_ssh_cm "$((RT_N * 2))" -- \
    env AIOPS_CONFIG="$TMP/lab1/config.yml" "$AIOPS" run -- "${SSH_CM[@]}" $BENCH_USER@127.0.0.1 hostname
ssh -S "$CM_SOCK" -O exit x >/dev/null 2>&1 || true
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3)
STDIN_TEXT=$req LEGACY_SSH="${SSH[*]} $BENCH_USER@127.0.0.1" LEGACY_LOG=$TMP/legacy.jsonl \
    H rt python_wrapper "$RT_N" 3 -- "$PY" "$BENCH/legacy_wrapper.py"

# --- 2. fan-out of `uptime` ----------------------------------------------------
log "2. fan-out (uptime)"
for n in "${SIZES[@]}"; do
    targets=$(python3 -c "import json,sys;n=int(sys.argv[1]);print(json.dumps(['srv%d'%k for k in range(1,n+1)]))" "$n")
    req="{\"targets\":$targets,\"command\":\"uptime\",\"requester\":\"bench\",\"reason\":\"bench\",\"max_concurrency\":$n}"
    STDIN_TEXT=$req WANT=$n H fanout "fan.aiops.$n" "$FANOUT_REPS" -- \
        env AIOPS_CONFIG="$TMP/fleet/config.yml" "$AIOPS" run
    reps=3; [ "$n" = 500 ] && reps=1
    H parssh "fan.ssh.$n" "$reps" "$n" -- "${SSH[@]}" $BENCH_USER@127.0.0.1 uptime
done

log "2b. ansible -m command -a uptime, forks = targets (ControlMaster off: a fresh connection per target)"
for n in "${SIZES[@]}"; do
    inv=$TMP/inventory-$n.ini
    {
        echo "[all]"
        for k in $(seq 1 "$n"); do echo "srv$k ansible_host=127.0.0.1"; done
        echo "[all:vars]"
        echo "ansible_port=$SSH_PORT"
        echo "ansible_user=$BENCH_USER"
        echo "ansible_ssh_private_key_file=$TMP/client_key"
        echo "ansible_python_interpreter=/usr/bin/python3"
    } >"$inv"
    cap=900; [ "$n" = 500 ] && cap=$ANSIBLE_CAP_500
    ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_SSH_ARGS="-o ControlMaster=no -o ControlPath=none -o UserKnownHostsFile=$TMP/known_hosts" \
    ANSIBLE_LOCAL_TEMP=$TMP/ansible-local ANSIBLE_REMOTE_TEMP=$BENCH_HOME/.ansible-tmp ANSIBLE_NOCOLOR=1 \
        H ansible "fan.ansible.$n" "$cap" "$n" -- ansible all -i "$inv" -m command -a uptime -f "$n"
done

# --- 3. memory -------------------------------------------------------------------
log "3. agent RSS under 100 concurrent aiops run (sleep 1); controller peak for $FLEET_N targets"
req='{"target":"srv1","command":"sleep 1","requester":"bench","reason":"bench"}'
STDIN_TEXT=$req H conc conc100 "$AGENT1_PID" 100 -- env AIOPS_CONFIG="$TMP/lab1/config.yml" "$AIOPS" run
targets=$(python3 -c "import json,sys;print(json.dumps(['srv%d'%k for k in range(1,int(sys.argv[1])+1)]))" "$FLEET_N")
req="{\"targets\":$targets,\"command\":\"uptime\",\"requester\":\"bench\",\"reason\":\"bench\",\"max_concurrency\":$FLEET_N}"
echo "$req" | AIOPS_CONFIG=$TMP/fleet/config.yml /usr/bin/time -f %M -o "$TMP/ctl500.txt" "$AIOPS" run >/dev/null
echo "controller_500_maxrss_kib $(tail -1 "$TMP/ctl500.txt")" | tee -a "$RESULTS"
echo "fleet_targets $FLEET_N" | tee -a "$RESULTS"

# --- 4. streaming ----------------------------------------------------------------
log "4a. agent-side drain of $STREAM_BYTES bytes (default 64 KiB cap: agent reads it all, keeps head+tail)"
req="{\"target\":\"srv1\",\"command\":\"head -c $STREAM_BYTES /dev/zero\",\"requester\":\"bench\",\"reason\":\"bench\"}"
STDIN_TEXT=$req TIMEFILE=$TMP/t4a.txt H stream drain "$AGENT1_PID" "$STREAM_BYTES" -- \
    env AIOPS_CONFIG="$TMP/lab1/config.yml" "$AIOPS" run
log "4b. end to end, $STREAM_BYTES bytes streamed to a file on the controller (save_output)"
req="{\"target\":\"srv2\",\"command\":\"head -c $STREAM_BYTES /dev/zero\",\"requester\":\"bench\",\"reason\":\"bench\",\"save_output\":true}"
STDIN_TEXT=$req TIMEFILE=$TMP/t4b.txt H stream e2e "$AGENT2_PID" "$STREAM_BYTES" -- \
    env AIOPS_CONFIG="$TMP/lab1/config-save.yml" "$AIOPS" run
echo "e2e_controller_audit_bytes $(stat -c %s "$TMP/lab1/audit-save.jsonl")" | tee -a "$RESULTS"
echo "load_at_end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RESULTS"

# --- 5. the privilege split: hostname before/after, privileged read via the executor ---
log "5. privilege split (benches/privilege.sh; BEFORE_BIN=${BEFORE_BIN:-unset})"
BIN=$REPO/target/release RT_N=$RT_N RESULTS=$RESULTS bash "$BENCH/privilege.sh"

# --- 6. issue 13's budget: receipts + durable write-ahead, before/after -----------
if [ -n "${BEFORE_WAL_BIN:-}${BEFORE_CHAINS_BIN:-}" ]; then
    log "6. receipts + write-ahead overhead (benches/overhead.sh)"
    BIN=$REPO/target/release RT_N=$((RT_N * 2)) RESULTS=$RESULTS bash "$BENCH/overhead.sh"
fi

log "report"
python3 "$BENCH/fleet_report.py" "$RESULTS"
