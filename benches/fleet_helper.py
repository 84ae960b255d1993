#!/usr/bin/env python3
"""Measuring helpers for benches/fleet.sh (stdlib only).

Every subcommand appends `key value` lines to $RESULTS and echoes them.
"""
import json
import os
import statistics
import subprocess
import sys
import time

RESULTS = os.environ.get("RESULTS", "/dev/null")


def record(key, value):
    line = f"{key} {value}"
    print(line, flush=True)
    with open(RESULTS, "a") as f:
        f.write(line + "\n")


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_once(argv, stdin_bytes):
    t = time.perf_counter()
    p = subprocess.run(argv, input=stdin_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(f"FAILED ({p.returncode}): {argv}\n{p.stdout[-500:]!r}\n{p.stderr[-500:]!r}\n")
        sys.exit(1)
    return dt, p.stdout


def vm(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    return 0


def cmd_rt(args):
    """rt KEY N WARMUP -- argv... ; stdin from $STDIN_TEXT."""
    key, n, warm = args[0], int(args[1]), int(args[2])
    argv = args[4:]
    stdin = os.environ.get("STDIN_TEXT", "").encode()
    for _ in range(warm):
        run_once(argv, stdin)
    xs = [run_once(argv, stdin)[0] * 1000 for _ in range(n)]
    record(f"{key}.median_ms", f"{statistics.median(xs):.2f}")
    record(f"{key}.p95_ms", f"{pct(xs, 0.95):.2f}")
    record(f"{key}.n", n)


def cmd_rt_pair(args):
    """rt_pair KEY_A KEY_B N -- argv_a... -- argv_b... ; stdin for A from $STDIN_TEXT,
    for B from $STDIN_TEXT_B (empty when unset).

    Alternates A and B call by call (ABAB..., then BABA... halfway), so a
    machine that gets busier or quieter during the run affects both alike.
    """
    ka, kb, n = args[0], args[1], int(args[2])
    rest = args[4:]
    cut = rest.index("--")
    argv_a, argv_b = rest[:cut], rest[cut + 1:]
    stdin = os.environ.get("STDIN_TEXT", "").encode()
    stdin_b = os.environ.get("STDIN_TEXT_B", "").encode()
    for _ in range(3):
        run_once(argv_a, stdin)
        run_once(argv_b, stdin_b)
    xa, xb = [], []
    for i in range(n):
        pair = [(xa, argv_a, stdin), (xb, argv_b, stdin_b)]
        if i >= n // 2:
            pair.reverse()
        for xs, argv, data in pair:
            xs.append(run_once(argv, data)[0] * 1000)
    for key, xs in ((ka, xa), (kb, xb)):
        record(f"{key}.median_ms", f"{statistics.median(xs):.2f}")
        record(f"{key}.p95_ms", f"{pct(xs, 0.95):.2f}")
        record(f"{key}.n", n)
    wins = sum(1 for a, b in zip(xa, xb) if a <= b)
    record(f"{ka}.faster_in_pairs", f"{wins}/{n}")


def cmd_rt_multi(args):
    """rt_multi N -- KEY argv... -- KEY argv... [-- ...] ; stdin from $STDIN_TEXT.

    Round robin: every round calls each command once, the starting one
    rotating from round to round, so load drift and any order effect hit all
    alike. Records wall-clock median/p95 per key and the median CPU time
    (user + system, from wait4) of the called process itself.
    """
    n = int(args[0])
    groups, cur = [], None
    for a in args[1:]:
        if a == "--":
            cur = []
            groups.append(cur)
        else:
            cur.append(a)
    cmds = [(g[0], g[1:]) for g in groups]
    stdin = os.environ.get("STDIN_TEXT", "").encode()

    def once(argv):
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(stdin)
        dt = (time.perf_counter() - t) * 1000
        if p.returncode != 0:
            sys.stderr.write(f"FAILED ({p.returncode}): {argv}\n{out[-500:]!r}\n{err[-500:]!r}\n")
            sys.exit(1)
        return dt

    def once_cpu(argv):
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.stdin.write(stdin)
        p.stdin.close()
        _, status, ru = os.wait4(p.pid, 0)
        dt = (time.perf_counter() - t) * 1000
        if status != 0:
            sys.stderr.write(f"FAILED ({status}): {argv}\n")
            sys.exit(1)
        return dt, (ru.ru_utime + ru.ru_stime) * 1000

    for _ in range(3):
        for _, argv in cmds:
            once(argv)
    walls = {k: [] for k, _ in cmds}
    cpus = {k: [] for k, _ in cmds}
    for i in range(n):
        order = cmds[i % len(cmds):] + cmds[:i % len(cmds)]
        for key, argv in order:
            dt, cpu = once_cpu(argv)
            walls[key].append(dt)
            cpus[key].append(cpu)
    for key, _ in cmds:
        record(f"{key}.median_ms", f"{statistics.median(walls[key]):.2f}")
        record(f"{key}.p95_ms", f"{pct(walls[key], 0.95):.2f}")
        record(f"{key}.cpu_median_ms", f"{statistics.median(cpus[key]):.2f}")
        record(f"{key}.n", n)


def cmd_fanout(args):
    """fanout KEY REPS -- argv... ; stdin $STDIN_TEXT; checks summary.succeeded."""
    key, reps = args[0], int(args[1])
    argv = args[3:]
    stdin = os.environ.get("STDIN_TEXT", "").encode()
    want = int(os.environ.get("WANT", "0"))
    xs = []
    for _ in range(reps):
        dt, out = run_once(argv, stdin)
        ans = json.loads(out)
        ok = ans.get("summary", {}).get("succeeded", 1 if ans.get("status") == "executed" else 0)
        if want and ok != want:
            sys.stderr.write(f"fan-out: {ok}/{want} succeeded: {out[:400]!r}\n")
            sys.exit(1)
        xs.append(dt * 1000)
    record(f"{key}.median_ms", f"{statistics.median(xs):.1f}")
    record(f"{key}.reps", reps)


def cmd_parssh(args):
    """parssh KEY REPS N -- ssh argv... : N fresh ssh at once, wall time until all exit."""
    key, reps, n = args[0], int(args[1]), int(args[2])
    argv = args[4:]
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        ps = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE) for _ in range(n)]
        fails = 0
        for p in ps:
            p.communicate()
            fails += p.returncode != 0
        xs.append((time.perf_counter() - t) * 1000)
        if fails:
            record(f"{key}.failed", fails)
    record(f"{key}.median_ms", f"{statistics.median(xs):.1f}")
    record(f"{key}.reps", reps)


def cmd_conc(args):
    """conc KEY AGENT_PID N -- argv... : N `aiops run` at once; agent VmRSS sampled."""
    key, pid, n = args[0], int(args[1]), int(args[2])
    argv = args[4:]
    stdin = os.environ.get("STDIN_TEXT", "").encode()
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM
    ps = []
    for _ in range(n):
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdin.write(stdin)
        p.stdin.close()
        ps.append(p)
    peak = 0
    while any(p.poll() is None for p in ps):
        peak = max(peak, vm(pid, "VmRSS"))
        time.sleep(0.01)
    ok = 0
    for p in ps:
        out = p.stdout.read()
        try:
            ok += json.loads(out).get("status") == "executed"
        except ValueError:
            pass
    record(f"{key}.ok", f"{ok}/{n}")
    record(f"{key}.rss_peak_sampled_kib", peak)
    record(f"{key}.vmhwm_kib", vm(pid, "VmHWM"))


def cmd_stream(args):
    """stream KEY AGENT_PID BYTES -- argv... : one run; wall time, agent peak, controller peak."""
    key, pid, nbytes = args[0], int(args[1]), int(args[2])
    argv = ["/usr/bin/time", "-f", "%M", "-o", os.environ["TIMEFILE"]] + args[4:]
    stdin = os.environ.get("STDIN_TEXT", "").encode()
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    before = vm(pid, "VmRSS")
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdin.write(stdin)
    p.stdin.close()
    # Read stdout in a thread-free way: drain it while sampling agent RSS.
    import threading
    chunks = []
    th = threading.Thread(target=lambda: chunks.append(p.stdout.read()))
    th.start()
    peak = 0
    while p.poll() is None:
        peak = max(peak, vm(pid, "VmRSS"))
        time.sleep(0.02)
    th.join()
    dt = time.perf_counter() - t
    out = chunks[0] if chunks else b""
    ans = json.loads(out)
    with open(os.environ["TIMEFILE"]) as f:
        ctl_kib = int(f.read().strip().splitlines()[-1])
    record(f"{key}.status", ans.get("status"))
    if ans.get("stdout_file"):
        # save_output: the full stream is in a file; check it against the answer.
        size = os.stat(ans["stdout_file"]).st_size
        record(f"{key}.stdout_bytes_reported", ans["output_digest"][0][1])
        record(f"{key}.saved_file_bytes", size)
        record(f"{key}.saved_file_matches", size == ans["output_digest"][0][1] == nbytes)
        os.unlink(ans["stdout_file"])
    else:
        record(f"{key}.stdout_bytes_reported", ans.get("stdout_dropped_bytes", 0) + len(ans.get("stdout", "").encode("utf-8")))
    record(f"{key}.wall_s", f"{dt:.2f}")
    record(f"{key}.mb_per_s", f"{nbytes / dt / 1e6:.1f}")
    record(f"{key}.agent_rss_before_kib", before)
    record(f"{key}.agent_rss_peak_sampled_kib", peak)
    record(f"{key}.agent_vmhwm_kib", vm(pid, "VmHWM"))
    record(f"{key}.controller_maxrss_kib", ctl_kib)


def cmd_ansible(args):
    """ansible KEY CAP_S N -- argv... : one run under a time cap."""
    key, cap, n = args[0], float(args[1]), int(args[2])
    argv = args[4:]
    import signal
    t = time.perf_counter()
    # Own process group, so a timeout ends Ansible's forks and their ssh too.
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=cap)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        record(f"{key}.timed_out_after_s", f"{cap:.0f}")
        return
    dt = (time.perf_counter() - t) * 1000
    ok = out.decode(errors="replace").count("| CHANGED |")
    record(f"{key}.ok", f"{ok}/{n}")
    record(f"{key}.median_ms", f"{dt:.1f}")
    record(f"{key}.reps", 1)


def main():
    sub, args = sys.argv[1], sys.argv[2:]
    globals()["cmd_" + sub](args)


if __name__ == "__main__":
    main()
