#!/usr/bin/env bash
# setup-aiops.sh: the set-up verbs operators of the older tool know, thin over the CLIs.
#
# On the gateway host ("hermes", aiops-controller installed):
#   setup-aiops.sh prepare-hermes-host           the hermes user, linger, its directories
#   setup-aiops.sh hermes TARGET_NAME ADDRESS     config + PKI (first time) + TARGET's bundle
#   setup-aiops.sh update-aiops [SOURCE]          replace binaries and knowledge only
#   setup-aiops.sh print-bootstrap                what to tell the assistant
# On a target (aiops-agent installed):
#   setup-aiops.sh srv1 BUNDLE                    enroll with BUNDLE and start the agent
#
# update-aiops never touches config, keys, users or sudoers. SOURCE is an
# aiops-controller .deb, or a directory holding `aiops` (and optionally `knowledge/`);
# default: the release build of the checkout this script lives in.
set -euo pipefail

AIOPS_HOME=${AIOPS_HOME:-/opt/aiops}
AIOPS=${AIOPS_HOME}/bin/aiops
CONFIG=${AIOPS_HOME}/config.yml
HERMES_USER=${HERMES_USER:-hermes}
EXEC_USER=aiopsexec
APPROVER_USER=aiops-approver

die() { echo "setup-aiops.sh: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root"; }
as_exec() { runuser -u "$EXEC_USER" -- "$AIOPS" --config "$CONFIG" "$@"; }

prepare_hermes_host() {
  need_root
  [ -x "$AIOPS" ] || die "$AIOPS is missing: install the aiops-controller package first"
  if ! getent passwd "$HERMES_USER" >/dev/null; then
    useradd --create-home --shell /bin/bash --comment "Hermes assistant" "$HERMES_USER"
  fi
  local home
  home=$(getent passwd "$HERMES_USER" | cut -d: -f6)
  install -d -o "$HERMES_USER" -g "$(id -gn "$HERMES_USER")" -m 0700 "$home/.hermes" "$home/.hermes/logs"
  # Linger: the assistant's user services keep running without a login session.
  if command -v loginctl >/dev/null && [ -d /run/systemd/system ]; then
    loginctl enable-linger "$HERMES_USER"
  else
    install -d -m 0755 /var/lib/systemd/linger && touch "/var/lib/systemd/linger/$HERMES_USER"
  fi
  echo "prepared: user $HERMES_USER, linger, $home/.hermes; it reaches aiops only via: sudo -n -u $EXEC_USER $AIOPS run"
}

hermes_target() {
  need_root
  local name=${1:?usage: setup-aiops.sh hermes TARGET_NAME TARGET_ADDRESS}
  local address=${2:?usage: setup-aiops.sh hermes TARGET_NAME TARGET_ADDRESS}
  [ -x "$AIOPS" ] || die "$AIOPS is missing: install the aiops-controller package first"
  [ -e "$CONFIG" ] || die "$CONFIG is missing"
  local pki=$AIOPS_HOME/pki
  if [ ! -e "$pki/ca.key" ]; then
    as_exec certs init >/dev/null
    echo "created the PKI in $pki"
  fi
  if [ ! -e "$AIOPS_HOME/approver/approver.key" ]; then
    runuser -u "$APPROVER_USER" -- "$AIOPS" approvals init-key --out "$AIOPS_HOME/approver/approver.key" >/dev/null
    install -o "$EXEC_USER" -g "$EXEC_USER" -m 0644 "$AIOPS_HOME/approver/approver.pub" "$pki/approver.pub"
    echo "created the approver key in $AIOPS_HOME/approver (readable by $APPROVER_USER only)"
  fi
  "$AIOPS" --config "$CONFIG" targets add "$name" "$address" >/dev/null
  local bundle=$pki/bundles/$name.bundle
  as_exec certs bundle "$name" --address "$address" --out "$bundle" >/dev/null
  echo "target $name ($address) added to $CONFIG"
  echo "enrollment bundle: $bundle (holds $name's private key)"
  echo "copy it to $name over a trusted channel and enroll there, then delete every copy:"
  echo "  scp $bundle root@$name:/root/$name.bundle"
  echo "  ssh root@$name /usr/share/aiops-agent/setup-aiops.sh srv1 /root/$name.bundle"
  echo "  rm $bundle"
}

enroll_target() {
  need_root
  local bundle=${1:?usage: setup-aiops.sh srv1 BUNDLE}
  [ -x /usr/bin/aiops-agent ] || die "aiops-agent is not installed"
  [ -r "$bundle" ] || die "$bundle: not readable"
  /usr/bin/aiops-agent --config /etc/aiops-agent/agent.yml enroll "$bundle"
  systemctl enable aiops-agent.service >/dev/null 2>&1
  systemctl restart aiops-agent.service
  local i
  for i in $(seq 1 50); do
    systemctl is-active --quiet aiops-agent.service && break
    sleep 0.2
  done
  systemctl is-active --quiet aiops-agent.service || { systemctl status --no-pager aiops-agent.service >&2 || true; die "aiops-agent did not start"; }
  rm -f -- "$bundle"
  echo "enrolled and started aiops-agent; the bundle $bundle was deleted"
}

update_aiops() {
  need_root
  local src=${1:-}
  local tmp="" bin knowledge
  if [ -z "$src" ]; then
    src="$(cd "$(dirname "$0")/.." && pwd)/target/release"
  fi
  if [ -f "$src" ] && [[ "$src" == *.deb ]]; then
    tmp=$(mktemp -d)
    trap '[ -n "$tmp" ] && rm -rf "$tmp"' RETURN
    dpkg-deb -x "$src" "$tmp"
    bin=$tmp/opt/aiops/bin/aiops
    knowledge=$tmp/opt/aiops/knowledge
  else
    bin=$src/aiops
    knowledge=$src/knowledge
    [ -d "$knowledge" ] || knowledge="$(cd "$(dirname "$0")/.." && pwd)/knowledge"
  fi
  [ -x "$bin" ] || die "$bin: no aiops binary there"
  "$bin" --version >/dev/null || die "$bin does not run"
  install -d -o root -g root -m 0755 "$AIOPS_HOME/bin"
  install -o root -g root -m 0755 "$bin" "$AIOPS_HOME/bin/.aiops.new"
  mv -f "$AIOPS_HOME/bin/.aiops.new" "$AIOPS"
  ln -sfn aiops "$AIOPS_HOME/bin/run_action"
  ln -sfn bin/aiops "$AIOPS_HOME/run_action"
  ln -sfn bin/aiops "$AIOPS_HOME/run_action.py"
  if [ -d "$knowledge" ]; then
    rm -rf "$AIOPS_HOME/.knowledge.new"
    cp -r "$knowledge" "$AIOPS_HOME/.knowledge.new"
    chown -R root:root "$AIOPS_HOME/.knowledge.new"
    chmod -R u=rwX,go=rX "$AIOPS_HOME/.knowledge.new"
    rm -rf "$AIOPS_HOME/.knowledge.old"
    [ -d "$AIOPS_HOME/knowledge" ] && mv "$AIOPS_HOME/knowledge" "$AIOPS_HOME/.knowledge.old"
    mv "$AIOPS_HOME/.knowledge.new" "$AIOPS_HOME/knowledge"
    rm -rf "$AIOPS_HOME/.knowledge.old"
  fi
  echo "updated $AIOPS ($("$AIOPS" --version)) and $AIOPS_HOME/knowledge; config, keys, users and sudoers untouched"
}

case "${1:-}" in
  prepare-hermes-host) prepare_hermes_host ;;
  hermes) shift; hermes_target "$@" ;;
  srv1|target|enroll) shift; enroll_target "$@" ;;
  update-aiops) shift; update_aiops "$@" ;;
  print-bootstrap) exec "$AIOPS" --config "$CONFIG" print-bootstrap ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64 ;;
esac
