#!/usr/bin/env bash
# A second Docker engine, NOT in swarm mode, for the plain-host end-to-end suite: a dockerd
# in its own network namespace (dsop-ns), joined to the host by the bridge dsopbr0
# (10.214.9.1 on the host, 10.214.9.2 in the namespace), with its own data root, exec root,
# pid file and sockets under $DSOP_BASE (default /tmp/dsop: plugin socket paths must stay
# under 108 bytes). dockerd is started with `nsenter --net` (not `ip netns exec`, which
# remounts /sys and hides the cgroups dockerd needs). It also listens on $DSOP_ETC/engine.sock,
# the directory its DSO plugin mounts at /etc/dso, so that the plugin reaches this engine.
# Its plugins' runtime directories are /run/docker/plugins/<id> (dockerd fixes that path).
# The image dso-busybox:latest is imported from Debian's busybox-static.
#
# Usage: plainhost-engine.sh start|stop
#   start  removes leftovers of an earlier run, then starts everything (idempotent)
#   stop   stops the engine, unmounts what is under $DSOP_BASE, removes the namespace, the
#          bridge and the FORWARD rules, and deletes $DSOP_BASE
# Environment: DSOP_BASE, DSOP_ETC (must exist before start), DSOP_TIMEOUT (seconds, default 90).
set -euo pipefail

NS=dsop-ns
BR=dsopbr0
VETH=dsop-veth0
PEER=dsop-veth1
HOST_IP=10.214.9.1
NS_IP=10.214.9.2
BASE=${DSOP_BASE:-/tmp/dsop}
ETC=${DSOP_ETC:-$BASE/etc-dso}
SOCK=$BASE/docker.sock
PIDFILE=$BASE/dockerd.pid
LOG=$BASE/dockerd.log
TIMEOUT=${DSOP_TIMEOUT:-90}
IMAGE=dso-busybox:latest

say() { echo "plainhost-engine: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Stops the process a pid file names, if it is still the program we started.
stop_pidfile() {
  local file=$1 comm=$2 pid i
  [ -s "$file" ] || return 0
  pid=$(tr -dc '0-9' <"$file")
  if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
    if alive "$pid"; then say "$comm (pid $pid) did not stop; killing it"; kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
  fi
  rm -f "$file"
}

# dockerd puts every managed plugin's runtime directory (socket, DSO's compose tmpfs) under
# /run/docker/plugins/<id>, whatever its exec root: this engine's plugins are those whose
# ids are in its data root.
plugin_runtime_dirs() {
  local d
  for d in "$BASE"/data/plugins/*/; do
    d=$(basename "$d")
    [[ "$d" =~ ^[0-9a-f]{64}$ ]] && echo "/run/docker/plugins/$d"
  done
  return 0
}

stop() {
  local runtime
  runtime=$(plugin_runtime_dirs)
  stop_pidfile "$PIDFILE" dockerd
  # dockerd stops its containerd; after a KILL the containerd it started may be left.
  stop_pidfile "$BASE/exec/containerd/containerd.pid" containerd
  # Mounts under BASE (overlays, the compose tmpfs, netns files), deepest first.
  if [ -d "$BASE" ]; then
    awk -v b="$BASE/" 'index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  for d in $runtime; do
    awk -v b="$d/" 'index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$d"
  done
  while iptables -D FORWARD -i "$BR" -j ACCEPT 2>/dev/null; do :; done
  while iptables -D FORWARD -o "$BR" -j ACCEPT 2>/dev/null; do :; done
  ip link del "$VETH" 2>/dev/null || true
  ip link del "$BR" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$BASE/data" "$BASE/exec" "$SOCK" "$LOG" "$ETC/engine.sock"
}

engine_ok() { timeout 15 docker -H "unix://$SOCK" info >/dev/null 2>&1; }

start() {
  command -v dockerd >/dev/null || die "dockerd not found: run scripts/install-system-deps.sh"
  [ -d "$ETC" ] || die "$ETC does not exist (the plugin's /etc/dso directory is made first)"
  stop
  mkdir -p "$BASE/data" "$BASE/exec"
  ip netns add "$NS"
  ip link add "$BR" type bridge
  ip addr add "$HOST_IP/24" dev "$BR"
  ip link set "$BR" up
  ip link add "$VETH" type veth peer name "$PEER"
  ip link set "$VETH" master "$BR" up
  ip link set "$PEER" netns "$NS"
  ip -n "$NS" addr add "$NS_IP/24" dev "$PEER"
  ip -n "$NS" link set "$PEER" up
  ip -n "$NS" link set lo up
  ip -n "$NS" route add default via "$HOST_IP"
  iptables -I FORWARD -i "$BR" -j ACCEPT
  iptables -I FORWARD -o "$BR" -j ACCEPT

  say "starting dockerd in $NS (log: $LOG)"
  setsid nohup nsenter --net="/var/run/netns/$NS" dockerd \
    --data-root "$BASE/data" --exec-root "$BASE/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" -H "unix://$ETC/engine.sock" \
    --bip 172.31.250.1/24 --default-address-pool base=172.31.0.0/16,size=24 \
    >>"$LOG" 2>&1 </dev/null &
  local deadline=$((SECONDS + TIMEOUT))
  until engine_ok; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOG" >&2; die "dockerd did not answer within ${TIMEOUT}s"; }
    sleep 1
  done
  local state
  state=$(docker -H "unix://$SOCK" info --format '{{.Swarm.LocalNodeState}}')
  [ "$state" = inactive ] || die "the engine is in swarm state $state, expected inactive"

  if ! docker -H "unix://$SOCK" image inspect "$IMAGE" >/dev/null 2>&1; then
    local bb dir
    for bb in /bin/busybox /usr/bin/busybox ""; do [ -n "$bb" ] && file -L "$bb" 2>/dev/null | grep -q 'statically linked' && break; done
    [ -n "$bb" ] || die "no static busybox: install Debian's busybox-static"
    dir=$(mktemp -d /tmp/dsop-busybox.XXXXXX)
    mkdir -p "$dir/bin" "$dir/tmp"
    cp "$bb" "$dir/bin/busybox"
    for a in sh cat env sleep stat ls id wc; do ln -s busybox "$dir/bin/$a"; done
    tar -C "$dir" -c . | docker -H "unix://$SOCK" import --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
    rm -rf "$dir"
  fi
  say "engine ready: DOCKER_HOST=unix://$SOCK"
}

case "${1:-}" in
  start) start ;;
  stop) stop; rm -rf "$BASE" ;;
  *) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
