#!/usr/bin/env python3
"""What the older tool did, for comparison: parse JSON, regex policy, ssh, append JSONL."""
import json, os, re, subprocess, sys, time

ALLOW = [re.compile(p) for p in (r"^hostname( -[fsiI])?$", r"^uptime( -p)?$", r"^df( -h)?$",
                                 r"^(free|uname|whoami|id)( -[a-z]+)?$")]
DENY = re.compile(r"[;&|`$<>]|\brm\b|\bshutdown\b|\breboot\b")

req = json.loads(sys.stdin.read())
cmd = req["command"]
if DENY.search(cmd) or not any(p.match(cmd) for p in ALLOW):
    print(json.dumps({"status": "rejected", "command": cmd}))
    sys.exit(1)
ssh = os.environ["LEGACY_SSH"].split()
t = time.time()
p = subprocess.run(ssh + [cmd], capture_output=True, text=True, timeout=60)
ans = {"status": "executed", "target": req["target"], "command": cmd, "exit_code": p.returncode,
       "stdout": p.stdout, "stderr": p.stderr, "duration_ms": int((time.time() - t) * 1000)}
with open(os.environ["LEGACY_LOG"], "a") as f:
    f.write(json.dumps({"ts": t, "requester": req.get("requester"), **ans}) + "\n")
print(json.dumps(ans))
