#!/bin/sh
# wasmlet node installer: copies the shims onto the node and registers their runtime
# handlers with the node's containerd, or (with `uninstall`) undoes both.
#
# Runs in the installer DaemonSet's container with the node's root filesystem at
# $HOST_ROOT (default /host) and the node's PID namespace (to restart containerd). Idempotent:
# the config block is added once, between marker lines; the config is backed up first.
# Detects k3s, rke2 and microk8s, whose containerd config is generated from a template.
#
#   install.sh [install|uninstall]
# Environment: HOST_ROOT, ENGINES ("wasmtime wasmer wamr wasmedge"), SHIM_SOURCE (dir with the shims),
#   RESTART (auto|none), NODE_NAME (to label the node; needs kubectl and RBAC).
set -eu

ACTION="${1:-install}"
HOST_ROOT="${HOST_ROOT:-/host}"
ENGINES="${ENGINES:-wasmtime}"
SHIM_SOURCE="${SHIM_SOURCE:-/wasmlet/bin}"
RESTART="${RESTART:-auto}"
BIN_DIR="/usr/local/bin"
BEGIN="# BEGIN wasmlet (managed by the wasmlet node installer)"
END="# END wasmlet"

log() { echo "wasmlet-installer: $*"; }

# Which containerd flavour runs on the node, and where its config (or template) is.
detect() {
  if [ -d "$HOST_ROOT/var/lib/rancher/k3s/agent/etc/containerd" ]; then
    FLAVOUR=k3s
    DIR="$HOST_ROOT/var/lib/rancher/k3s/agent/etc/containerd"
  elif [ -d "$HOST_ROOT/var/lib/rancher/rke2/agent/etc/containerd" ]; then
    FLAVOUR=rke2
    DIR="$HOST_ROOT/var/lib/rancher/rke2/agent/etc/containerd"
  elif [ -d "$HOST_ROOT/var/snap/microk8s/current/args" ]; then
    FLAVOUR=microk8s
    CONFIG="$HOST_ROOT/var/snap/microk8s/current/args/containerd-template.toml"
    return
  else
    FLAVOUR=containerd
    CONFIG="$HOST_ROOT/etc/containerd/config.toml"
    return
  fi
  # k3s and rke2 regenerate config.toml at start: edit the template, created from the
  # generated config the first time.
  CONFIG="$DIR/config.toml.tmpl"
  if [ ! -f "$CONFIG" ] && [ -f "$DIR/config.toml" ]; then
    cp "$DIR/config.toml" "$CONFIG"
  fi
}

# The CRI runtimes table of this config's schema: version 3 and later are containerd 2.x's
# (`containerd config default` of 2.3 writes version 4; 2.0-2.2 write 3). Older schemas
# (and a config without a version, which 2.x reads as version 1 and migrates) take 1.x's.
runtimes_table() {
  if grep -Eq '^[[:space:]]*version[[:space:]]*=[[:space:]]*([3-9]|[1-9][0-9]+)[[:space:]]*(#.*)?$' "$CONFIG" 2>/dev/null; then
    echo 'plugins."io.containerd.cri.v1.runtime".containerd.runtimes'
  else
    echo 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes'
  fi
}

# Whether the node's kubelet uses the systemd cgroup driver (runc's SystemdCgroup is on).
systemd_cgroup() {
  grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' "$CONFIG" 2>/dev/null
}

remove_block() {
  [ -f "$CONFIG" ] || return 0
  tmp="$CONFIG.wasmlet-tmp"
  awk -v b="$BEGIN" -v e="$END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$CONFIG" > "$tmp"
  cat "$tmp" > "$CONFIG"
  rm -f "$tmp"
}

add_block() {
  table=$(runtimes_table)
  # The block starts on a line of its own.
  if [ -s "$CONFIG" ] && [ "$(tail -c 1 "$CONFIG" | od -An -c | tr -d ' ')" != '\n' ]; then
    echo >> "$CONFIG"
  fi
  {
    echo "$BEGIN"
    for engine in $ENGINES; do
      echo "[$table.$engine]"
      echo "  runtime_type = \"io.containerd.$engine.v1\""
      if systemd_cgroup; then
        # kubelet's systemd driver gives slice:prefix:name cgroup paths; wasmlet expands them.
        echo "  [$table.$engine.options]"
        echo "    SystemdCgroup = true"
      fi
    done
    echo "$END"
  } >> "$CONFIG"
}

restart_containerd() {
  [ "$RESTART" = "none" ] && { log "not restarting containerd (RESTART=none)"; return; }
  case "$FLAVOUR" in
    k3s) units="k3s k3s-agent" ;;
    rke2) units="rke2-server rke2-agent" ;;
    microk8s) units="snap.microk8s.daemon-containerd" ;;
    *) units="containerd" ;;
  esac
  for unit in $units; do
    if nsenter -t 1 -m -u -n -i systemctl is-active --quiet "$unit" 2>/dev/null; then
      log "restarting $unit"
      nsenter -t 1 -m -u -n -i systemctl restart "$unit"
      return
    fi
  done
  log "no running containerd unit found among: $units; restart it yourself"
}

label_node() {
  [ -n "${NODE_NAME:-}" ] && command -v kubectl >/dev/null 2>&1 || return 0
  for engine in $ENGINES; do
    if [ "$1" = add ]; then
      kubectl label --overwrite node "$NODE_NAME" "wasmlet.dev/$engine=installed" || true
    else
      kubectl label node "$NODE_NAME" "wasmlet.dev/$engine-" || true
    fi
  done
}

detect
log "containerd flavour: $FLAVOUR, config: $CONFIG"
case "$ACTION" in
  install)
    mkdir -p "$HOST_ROOT$BIN_DIR" "$(dirname "$CONFIG")"
    for engine in $ENGINES; do
      shim="containerd-shim-$engine-v1"
      # cp + chmod, not install(1): BusyBox builds without it exist (Debian's does).
      cp "$SHIM_SOURCE/$shim" "$HOST_ROOT$BIN_DIR/$shim.wasmlet-new"
      chmod 0755 "$HOST_ROOT$BIN_DIR/$shim.wasmlet-new"
      mv "$HOST_ROOT$BIN_DIR/$shim.wasmlet-new" "$HOST_ROOT$BIN_DIR/$shim"
    done
    touch "$CONFIG"
    [ -f "$CONFIG.wasmlet-backup" ] || cp "$CONFIG" "$CONFIG.wasmlet-backup"
    before=$(md5sum < "$CONFIG")
    remove_block
    add_block
    if [ "$(md5sum < "$CONFIG")" != "$before" ]; then
      restart_containerd
    else
      log "config already up to date"
    fi
    label_node add
    ;;
  uninstall)
    label_node remove
    remove_block
    for engine in $ENGINES; do
      rm -f "$HOST_ROOT$BIN_DIR/containerd-shim-$engine-v1"
    done
    restart_containerd
    ;;
  *)
    echo "usage: $0 [install|uninstall]" >&2
    exit 2
    ;;
esac
log "$ACTION done"
