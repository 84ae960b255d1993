#!/usr/bin/env python3
"""Prints the tables of benches/fleet.sh from its results file (key value lines)."""
import sys

r = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    r[k] = v


def f(k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None


def yes(ok):
    return "MET" if ok else "NOT MET"


print(f"date {r.get('date')}  nproc {r.get('nproc')}  mem {r.get('mem_total')}  kernel {r.get('kernel')}  rev {r.get('rev')}")
print(f"load (1/5/15 min) at start {r.get('load_at_start')}, at end {r.get('load_at_end')}")
print(f"ssh side: user {r.get('ssh_user')}\n")

print("1. Round trip of `hostname` (fresh process per call)")
print("| tool | median ms | p95 ms | median vs aiops |")
print("|---|---:|---:|---:|")
a = f("aiops.median_ms")
for key, name in [("aiops", "aiops run (mTLS + sign + audit fsync)"), ("ssh_cm", "ssh, ControlMaster"),
                  ("ssh_fresh", "ssh, fresh connection"), ("python_wrapper", "Python wrapper + fresh ssh")]:
    m, p = f(f"{key}.median_ms"), f(f"{key}.p95_ms")
    print(f"| {name} | {m:.1f} | {p:.1f} | {m / a:.1f}x |")
print(f"\nruns per tool: {r.get('aiops.n')}")
pa, pc = f("pair_aiops.median_ms"), f("pair_ssh_cm.median_ms")
if pa and pc:
    print(f"interleaved call by call ({r.get('pair_aiops.n')} pairs): aiops median {pa:.2f} ms "
          f"(p95 {f('pair_aiops.p95_ms'):.2f}), ssh ControlMaster median {pc:.2f} ms "
          f"(p95 {f('pair_ssh_cm.p95_ms'):.2f}); aiops faster in {r.get('pair_aiops.faster_in_pairs')} pairs")
print(f"target aiops <= ssh ControlMaster (median): {yes(a <= f('ssh_cm.median_ms'))}"
      + (f"; interleaved: {yes(pa <= pc)}" if pa and pc else ""))
print(f"target aiops >= 20x faster than fresh ssh (median): {yes(f('ssh_fresh.median_ms') / a >= 20)} "
      f"({f('ssh_fresh.median_ms') / a:.1f}x)\n")

print("2. Fan-out of `uptime` (wall time, ms)")
print("| targets | aiops | parallel fresh ssh | ansible -m command | ssh / aiops | ansible / aiops |")
print("|---:|---:|---:|---:|---:|---:|")
goals = []
sizes = [n for n in (1, 10, 100, 500) if f(f"fan.aiops.{n}.median_ms")]
for n in sizes:
    a = f(f"fan.aiops.{n}.median_ms")
    s = f(f"fan.ssh.{n}.median_ms")
    an = f(f"fan.ansible.{n}.median_ms")
    ans = f"{an:.0f}" if an else f"timed out after {r.get(f'fan.ansible.{n}.timed_out_after_s')} s"
    sr = s / a
    ar = f"{an / a:.1f}x" if an else f"> {float(r[f'fan.ansible.{n}.timed_out_after_s']) * 1000 / a:.0f}x"
    extra = ""
    if r.get(f"fan.ssh.{n}.failed"):
        extra = f" ({r[f'fan.ssh.{n}.failed']} failed)"
    if r.get(f"fan.ansible.{n}.ok"):
        ans += f" ({r[f'fan.ansible.{n}.ok']} ok)"
    print(f"| {n} | {a:.0f} | {s:.0f}{extra} | {ans} | {sr:.1f}x | {ar} |")
    if n in (100, 500):
        goals.append((n, sr, an / a if an else None))
a1, a500 = f("fan.aiops.1.median_ms"), f("fan.aiops.500.median_ms")
if 100 in sizes and 500 in sizes:
    print(f"\ncost per added target (aiops): 1->100: {(f('fan.aiops.100.median_ms') - a1) / 99:.2f} ms, "
          f"1->500: {(a500 - a1) / 499:.2f} ms; parallel ssh 1->500: "
          f"{(f('fan.ssh.500.median_ms') - f('fan.ssh.1.median_ms')) / 499:.2f} ms")
print(f"aiops reps {r.get('fan.aiops.1.reps')} (median); ssh reps 3 (500: 1); ansible 1 run each")
for n, sr, ar in goals:
    print(f"target {n}: >=10x faster than parallel ssh: {yes(sr >= 10)} ({sr:.1f}x); "
          f">=100x faster than Ansible: {yes(ar is not None and ar >= 100) if ar else 'Ansible timed out'}"
          + (f" ({ar:.1f}x)" if ar else ""))

print("\n3. Memory")
idle = f("agent_idle_rss_kib") / 1024
conc = max(f("conc100.rss_peak_sampled_kib"), f("conc100.vmhwm_kib")) / 1024
ctl = f("controller_500_maxrss_kib") / 1024
print("| what | MiB |\n|---|---:|")
print(f"| agent RSS idle | {idle:.1f} |")
print(f"| agent peak RSS, 100 concurrent `aiops run` ({r.get('conc100.ok')} executed) | {conc:.1f} |")
print(f"| controller peak RSS, {r.get('fleet_targets', '500')}-target fan-out | {ctl:.1f} |")
print(f"target agent idle < 15 MiB: {yes(idle < 15)}; < 64 MiB under 100 concurrent: {yes(conc < 64)}\n")

print("4. Streaming")
print("| run | bytes | wall s | MB/s | agent RSS before MiB | agent peak MiB | controller peak MiB |")
print("|---|---:|---:|---:|---:|---:|---:|")
for key, name in [("drain", "agent drains all, default 64 KiB cap"), ("e2e", "end to end to a file (save_output)")]:
    pk = max(f(f"{key}.agent_rss_peak_sampled_kib"), f(f"{key}.agent_vmhwm_kib")) / 1024
    print(f"| {name} | {r.get(f'{key}.stdout_bytes_reported')} | {r.get(f'{key}.wall_s')} | {r.get(f'{key}.mb_per_s')} | "
          f"{f(f'{key}.agent_rss_before_kib') / 1024:.1f} | {pk:.1f} | {f(f'{key}.controller_maxrss_kib') / 1024:.1f} |")
d_pk = max(f("drain.agent_rss_peak_sampled_kib"), f("drain.agent_vmhwm_kib")) / 1024
print(f"e2e controller audit log after the run: {r.get('e2e_controller_audit_bytes')} bytes")
e_pk = max(f("e2e.agent_rss_peak_sampled_kib"), f("e2e.agent_vmhwm_kib")) / 1024
print(f"e2e saved file: {r.get('e2e.saved_file_bytes')} bytes, matches the answer's digest size and the bytes sent: "
      f"{r.get('e2e.saved_file_matches')}")
print(f"target 1 GB with agent < 64 MiB: agent-side drain {yes(d_pk < 64)}, end to end {yes(e_pk < 64)}; "
      f">= 200 MB/s: agent-side drain {yes(f('drain.mb_per_s') >= 200)}, end to end {yes(f('e2e.mb_per_s') >= 200)} "
      f"({r.get('e2e.mb_per_s')} MB/s)")

if f("now.median_ms") is not None:
    print("\n6. Issue 13's budget: receipts + durable write-ahead <= +1 ms median (hostname round trip)")
    print(f"{r.get('now.n')} rounds, round robin (benches/overhead.sh); nice {r.get('overhead.nice')}; "
          f"load {r.get('overhead.load_before')} before, {r.get('overhead.load_after')} after")
    print("| binaries | median ms | p95 ms | controller CPU ms |\n|---|---:|---:|---:|")
    for key, name in [("now", "current build"), ("before_chains", "before the chains (BEFORE_CHAINS_BIN)"),
                      ("before_wal", "before the write-ahead (BEFORE_WAL_BIN)")]:
        if f(f"{key}.median_ms") is not None:
            print(f"| {name} | {f(key + '.median_ms'):.2f} | {f(key + '.p95_ms'):.2f} | {f(key + '.cpu_median_ms'):.2f} |")
    for key in ("before_chains", "before_wal"):
        if f(f"{key}.median_ms") is not None:
            d = f("now.median_ms") - f(f"{key}.median_ms")
            print(f"now - {key}: {d:+.2f} ms median: budget +1 ms {yes(d <= 1.0)}")
