"""Writes N hash-chained audit records (the aiops format: sorted-key canonical JSON,
seq/prev/hash) shaped like `executed` records, for the export benchmark."""
import hashlib
import json
import sys

path, n = sys.argv[1], int(sys.argv[2])
prev = "0" * 64
with open(path, "w") as f:
    for seq in range(1, n + 1):
        r = {
            "event": "executed", "status": "executed", "target": "srv1", "requester": "hermes",
            "reason": "bench", "risk": "auto_allowed", "command": "systemctl status nginx",
            "exit_code": 0, "duration_ms": 7, "timed_out": False, "truncated": False,
            "request_id": f"00000000-0000-4000-8000-{seq:012d}",
            "stdout": "nginx.service - A high performance web server\n   Active: active (running)\n" * 4,
            "stderr": "", "stdout_bytes": 296, "stderr_bytes": 0,
            "stdout_sha256": "a" * 64, "stderr_sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ts": "2026-12-01T20:00:00.%03dZ" % (seq % 1000), "seq": seq, "prev": prev,
        }
        body = json.dumps(r, sort_keys=True, separators=(",", ":"))
        prev = hashlib.sha256(body.encode()).hexdigest()
        r["hash"] = prev
        f.write(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")
