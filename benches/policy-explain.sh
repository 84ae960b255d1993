#!/usr/bin/env bash
# Throughput of `aiops policy explain --stdin` over 10,000 corpus-style commands
# (both policy corpora, repeated), with the library-only figure beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p aiops-controller
cmds=$(mktemp)
trap 'rm -f "$cmds"' EXIT
while [ "$(wc -l <"$cmds")" -lt 10000 ]; do
  cat policy/tests/corpus/policy_cases.tsv policy/tests/corpus/extra_cases.tsv |
    grep -v '^#' | awk -F'\t' 'NF >= 2 && $3 !~ /^\[NL\]/ { print $1 }' >>"$cmds"
done
head -n 10000 "$cmds" >"$cmds.10k" && mv "$cmds.10k" "$cmds"
echo "== aiops policy explain --stdin (one process, 10,000 commands, JSON out)"
AIOPS_CONFIG=/nonexistent target/release/aiops policy explain --stdin <"$cmds" >/dev/null
echo "== library only (cargo bench -p aiops-policy --bench classify)"
cargo bench --quiet -p aiops-policy --bench classify 2>/dev/null | grep -i "commands/s"
