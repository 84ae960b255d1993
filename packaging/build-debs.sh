#!/usr/bin/env bash
# Builds aiops-agent_VERSION_ARCH.deb and aiops-controller_VERSION_ARCH.deb.
#
#   packaging/build-debs.sh [--bin-dir DIR] [--out DIR] [--version V]
#
# Without --bin-dir it builds the release binaries itself (cargo build --release --locked)
# and packages ${CARGO_TARGET_DIR:-target}/release/{aiops,aiops-agent}. Output goes to
# target/debian/ by default. Needs dpkg-deb, visudo (sudo) and strip; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin_dir=""
out="$root/target/debian"
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    *) echo "build-debs.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done

for tool in dpkg-deb visudo strip; do
  command -v "$tool" >/dev/null || { echo "build-debs.sh: $tool is missing (apt-get install dpkg-dev sudo binutils)" >&2; exit 1; }
done

if [ -z "$version" ]; then
  version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
fi
[ -n "$version" ] || { echo "build-debs.sh: no version" >&2; exit 1; }
arch=$(dpkg --print-architecture)

if [ -z "$bin_dir" ]; then
  cargo build --release --locked -p aiops-agent -p aiops-exec -p aiops-controller --bins
  bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for b in aiops aiops-agent aiops-exec aiops-sandbox; do
  [ -x "$bin_dir/$b" ] || { echo "build-debs.sh: $bin_dir/$b is missing" >&2; exit 1; }
done

# The sudoers drop-ins must parse before anything is packaged.
visudo -cqf packaging/agent/sudoers || { echo "build-debs.sh: packaging/agent/sudoers fails visudo -c" >&2; exit 1; }
visudo -cqf packaging/controller/sudoers || { echo "build-debs.sh: packaging/controller/sudoers fails visudo -c" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/aiops-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT

installed_size() { du -sk --exclude=DEBIAN "$1" | cut -f1; }

# ---- aiops-agent -----------------------------------------------------------------
a="$work/agent"
install -d -m 0755 "$a/DEBIAN" "$a/usr/bin" "$a/lib/systemd/system" "$a/etc/aiops-agent" \
  "$a/usr/share/aiops-agent" "$a/usr/share/doc/aiops-agent"
install -m 0755 "$bin_dir/aiops-agent" "$a/usr/bin/aiops-agent"
strip --strip-unneeded "$a/usr/bin/aiops-agent"
# The root executor and the account switch (postinst gives them to group aiops, 0750).
install -d -m 0755 "$a/usr/libexec/aiops-agent"
for b in aiops-exec aiops-sandbox; do
  install -m 0750 "$bin_dir/$b" "$a/usr/libexec/aiops-agent/$b"
  strip --strip-unneeded "$a/usr/libexec/aiops-agent/$b"
done
install -m 0644 packaging/agent/aiops-agent.service "$a/lib/systemd/system/aiops-agent.service"
# The agent's audit exporter ships disabled: it needs /etc/aiops-agent-export/export.yml.
install -m 0644 packaging/agent/aiops-agent-audit-export.service \
  "$a/lib/systemd/system/aiops-agent-audit-export.service"
install -m 0644 packaging/export/agent-export.yml.example "$a/usr/share/aiops-agent/export.yml.example"
install -m 0644 packaging/export/README.md "$a/usr/share/doc/aiops-agent/AUDIT_EXPORT.md"
install -m 0640 packaging/agent/agent.yml "$a/etc/aiops-agent/agent.yml"
install -m 0640 packaging/agent/policy.yml "$a/etc/aiops-agent/policy.yml"
install -m 0440 packaging/agent/sudoers "$a/usr/share/aiops-agent/sudoers"
install -m 0755 packaging/setup-aiops.sh "$a/usr/share/aiops-agent/setup-aiops.sh"
install -m 0644 packaging/README.md "$a/usr/share/doc/aiops-agent/README.md"
printf 'aiops-agent is licensed under the Apache License 2.0.\n' > "$a/usr/share/doc/aiops-agent/copyright"
printf '/etc/aiops-agent/agent.yml\n/etc/aiops-agent/policy.yml\n' > "$a/DEBIAN/conffiles"
install -m 0755 packaging/agent/postinst packaging/agent/prerm packaging/agent/postrm "$a/DEBIAN/"
cat > "$a/DEBIAN/control" <<CONTROL
Package: aiops-agent
Version: $version
Architecture: $arch
Maintainer: aiops maintainers <maintainers@example.invalid>
Section: admin
Priority: optional
Depends: sudo (>= 1.9.10), passwd, systemd
Installed-Size: $(installed_size "$a")
Description: aiops agent: signed, policy-checked commands over mutual TLS
 Runs as the unprivileged aiops user; accepts only the aiops controller's certificate
 and signature, re-checks every command against its own policy, runs read-only
 commands as the aiops-run account under Landlock, and reaches root only through a
 small executor that verifies the signed request and the approver's grant itself.
CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$a" "$out/aiops-agent_${version}_${arch}.deb" >/dev/null

# ---- aiops-controller ------------------------------------------------------------
c="$work/controller"
install -d -m 0755 "$c/DEBIAN" "$c/opt/aiops/bin" "$c/opt/aiops/knowledge" \
  "$c/usr/share/aiops-controller" "$c/usr/share/doc/aiops-controller"
install -m 0755 "$bin_dir/aiops" "$c/opt/aiops/bin/aiops"
strip --strip-unneeded "$c/opt/aiops/bin/aiops"
ln -s aiops "$c/opt/aiops/bin/run_action"
ln -s bin/aiops "$c/opt/aiops/run_action"
# The MVP's exact path (`echo '{...}' | sudo -u aiopsexec /opt/aiops/run_action.py`) keeps working.
ln -s bin/aiops "$c/opt/aiops/run_action.py"
install -m 0755 packaging/setup-aiops.sh "$c/opt/aiops/bin/setup-aiops.sh"
if [ -d knowledge ]; then
  (cd knowledge && find . -type f ! -name '*.swp' -print0) | while IFS= read -r -d '' f; do
    install -D -m 0644 "knowledge/$f" "$c/opt/aiops/knowledge/$f"
  done
fi
# The approver chat bot's unit ships disabled: it needs a bot token and its config first
# (README: Approver chat).
install -D -m 0644 packaging/aiops-approver-telegram.service \
  "$c/lib/systemd/system/aiops-approver-telegram.service"
# Likewise the Teams approver bot's: it needs the bot's registration, config, app secret file
# and certificate first (README: Approve from Microsoft Teams).
install -D -m 0644 packaging/aiops-approver-teams.service \
  "$c/lib/systemd/system/aiops-approver-teams.service"
# The audit exporter's unit ships disabled too: it needs /opt/aiops/export.yml (AUDIT_EXPORT.md).
install -D -m 0644 packaging/export/aiops-audit-export.service \
  "$c/lib/systemd/system/aiops-audit-export.service"
install -m 0644 packaging/export/export.yml.example packaging/export/otelcol-aiops-audit.yaml \
  "$c/usr/share/aiops-controller/"
install -m 0644 packaging/export/README.md "$c/usr/share/doc/aiops-controller/AUDIT_EXPORT.md"
install -m 0644 packaging/controller/config.yml "$c/usr/share/aiops-controller/config.yml"
install -m 0440 packaging/controller/sudoers "$c/usr/share/aiops-controller/sudoers"
install -m 0644 packaging/README.md "$c/usr/share/doc/aiops-controller/README.md"
printf 'aiops-controller is licensed under the Apache License 2.0.\n' > "$c/usr/share/doc/aiops-controller/copyright"
install -m 0755 packaging/controller/postinst packaging/controller/prerm packaging/controller/postrm "$c/DEBIAN/"
cat > "$c/DEBIAN/control" <<CONTROL
Package: aiops-controller
Version: $version
Architecture: $arch
Maintainer: aiops maintainers <maintainers@example.invalid>
Section: admin
Priority: optional
Depends: sudo (>= 1.9.10), passwd, util-linux
Installed-Size: $(installed_size "$c")
Description: aiops controller: the only way the assistant reaches servers
 The aiops CLI validates a request, classifies the command by policy, gets human
 approval for changes, signs the request and sends it to the target's aiops-agent
 over mutual-TLS gRPC, with a hash-chained audit log.
CONTROL
dpkg-deb --root-owner-group -Zgzip --build "$c" "$out/aiops-controller_${version}_${arch}.deb" >/dev/null

ls -1 "$out"/aiops-agent_"${version}"_"${arch}".deb "$out"/aiops-controller_"${version}"_"${arch}".deb
