#!/usr/bin/env bash
# The three-manager swarm `make test-cluster` runs DSO on, built on this one machine and
# removed again: three dockerd, each in its own network namespace (dsoc-n1..3) on the
# bridge dsocbr0 (10.213.7.0/24, the host is 10.213.7.1), each with its own --data-root,
# --exec-root, --pidfile and socket; a swarm with all three as managers; a real registry
# (Debian's docker-registry, its own config, on the bridge address) that the nodes reach
# with --insecure-registry; the busybox test image imported into each node.
#
# Usage: scripts/cluster-bed.sh up | down | stop-node N | start-node N | status
#   up          removes what an interrupted run left, then builds the bed (about a minute)
#   down        removes everything the bed made (safe when nothing is there)
#   stop-node N stops node N's dockerd (SIGTERM, as an operator or a crash-free shutdown would)
#   start-node N starts node N's dockerd again (it rejoins the swarm by itself)
# The host engine (/var/run/docker.sock) is never used. Every wait has a deadline.
# Everything lives under /var/lib/dsoc (data, logs), /run/dsoc (sockets, exec roots) and
# /dev/shm/dsoc (the plugins' /etc/dso: tokens stay in memory, never on disk).
set -euo pipefail

PREFIX=dsoc
BRIDGE=dsocbr0
NET=10.213.7
HOST_IP=$NET.1
NODES=(1 2 3)
DATA=/var/lib/dsoc
RUN=/run/dsoc
SHM=/dev/shm/dsoc
REGISTRY=$HOST_IP:5213
IMAGE=dso-busybox:latest
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "cluster-bed: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

node_ip() { echo "$NET.1$1"; }
node_sock() { echo "$RUN/n$1.sock"; }
node_pidfile() { echo "$RUN/n$1.pid"; }
node_log() { echo "$DATA/logs/n$1.log"; }
dk() { local n=$1; shift; timeout "${DK_TIMEOUT:-60}" docker -H "unix://$(node_sock "$n")" "$@"; }

pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
  [ "$state" != Z ] && [ "$state" != X ]
}

# Sends TERM to a pid, then KILL after `grace` seconds.
stop_pid() {
  local pid=$1 grace=${2:-20} i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 4; i++)); do pid_alive "$pid" || return 0; sleep 0.25; done
  say "pid $pid did not stop within ${grace}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do pid_alive "$pid" || return 0; sleep 0.25; done
}

# The pid in a pid file when it names a live process called `comm`.
pid_from() {
  local file=$1 comm=$2 pid
  [ -s "$file" ] || return 0
  pid=$(tr -dc '0-9' <"$file")
  if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then echo "$pid"; fi
}

# Processes the bed started whose daemon is gone (containerd, shims): their command lines
# name the bed's own directories, nothing else on the machine does.
bed_orphans() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)
    case "$cmd" in
      *"$RUN/"*|*"$DATA/"*) echo "${p#/proc/}" ;;
    esac
  done
}

wait_engine() {
  local n=$1 deadline=$((SECONDS + $2)) pid=${3:-}
  until DK_TIMEOUT=10 dk "$n" info >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

start_node() {
  local n=$1 pid
  pid=$(pid_from "$(node_pidfile "$n")" dockerd)
  if [ -n "$pid" ]; then say "node $n already runs (pid $pid)"; return 0; fi
  rm -f "$(node_pidfile "$n")" "$(node_sock "$n")"
  mkdir -p "$DATA/n$n" "$RUN/n$n" "$DATA/logs"
  echo "=== cluster-bed: starting dockerd of node $n at $(date -u +%FT%TZ) ===" >>"$(node_log "$n")"
  # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
  setsid nsenter --net="/var/run/netns/$PREFIX-n$n" dockerd \
    --data-root "$DATA/n$n" --exec-root "$RUN/n$n" --pidfile "$(node_pidfile "$n")" \
    -H "unix://$(node_sock "$n")" --insecure-registry "$REGISTRY" \
    >>"$(node_log "$n")" 2>&1 </dev/null &
  pid=$!
  disown "$pid" 2>/dev/null || true
  if ! wait_engine "$n" 180 "$pid"; then
    grep -v '\[core\]' "$(node_log "$n")" | tail -n 20 >&2 || true
    die "dockerd of node $n did not answer within 180s"
  fi
}

stop_node() {
  local n=$1 pid
  pid=$(pid_from "$(node_pidfile "$n")" dockerd)
  [ -n "$pid" ] && stop_pid "$pid" 30
  rm -f "$(node_pidfile "$n")"
}

down() {
  local n pid mp id
  for n in "${NODES[@]}"; do stop_node "$n"; done
  pid=$(pid_from "$RUN/registry.pid" docker-registry)
  [ -n "$pid" ] && stop_pid "$pid" 10
  for pid in $(bed_orphans); do stop_pid "$pid" 5; done
  # Mounts dockerd left behind (overlays, plugin rootfs, netns files): deepest first.
  awk -v a="$DATA" -v b="$RUN" 'index($5, a "/") == 1 || index($5, b "/") == 1 { print $5 }' /proc/self/mountinfo \
    | sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
  # dockerd keeps every engine's plugin sockets in /run/docker/plugins/<id>: only ours go.
  for id in $(ls -d "$DATA"/n*/plugins/[0-9a-f]*/ 2>/dev/null | xargs -r -n1 basename); do
    [[ "$id" =~ ^[0-9a-f]{64}$ ]] && rm -rf "/run/docker/plugins/$id"
  done
  for n in "${NODES[@]}"; do
    ip netns del "$PREFIX-n$n" 2>/dev/null || true
    ip link del "$PREFIX-n${n}h" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  rm -rf "$DATA" "$RUN" "$SHM"
}

network_up() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The host dockerd sets FORWARD's policy to DROP, and bridged frames pass iptables.
  iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  local n ns
  for n in "${NODES[@]}"; do
    ns=$PREFIX-n$n
    ip netns add "$ns"
    ip link add "$PREFIX-n${n}h" type veth peer name "$PREFIX-n${n}c"
    ip link set "$PREFIX-n${n}c" netns "$ns"
    ip link set "$PREFIX-n${n}h" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$PREFIX-n${n}c" name eth0
    ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
    # No default route: the bed needs only its bridge, and a node that tries Docker Hub
    # (the swarm agent tries to pull a task's image first) fails at once, not after DNS
    # times out.
  done
}

registry_up() {
  command -v docker-registry >/dev/null 2>&1 || die "docker-registry not found: run scripts/install-system-deps.sh (Debian's docker-registry)"
  mkdir -p "$DATA/registry" "$RUN"
  cat >"$RUN/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  setsid docker-registry serve "$RUN/registry.yml" >>"$DATA/logs/registry.log" 2>&1 </dev/null &
  local pid=$! deadline=$((SECONDS + 30))
  disown "$pid" 2>/dev/null || true
  echo "$pid" >"$RUN/registry.pid"
  until curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; do
    pid_alive "$pid" || { tail -n 20 "$DATA/logs/registry.log" >&2; die "docker-registry exited"; }
    [ $SECONDS -lt $deadline ] || die "the registry did not answer on $REGISTRY within 30s"
    sleep 0.3
  done
}

swarm_up() {
  local n token
  DK_TIMEOUT=120 dk 1 swarm init --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" >/dev/null
  token=$(dk 1 swarm join-token -q manager)
  for n in "${NODES[@]:1}"; do
    DK_TIMEOUT=120 dk "$n" swarm join --token "$token" --advertise-addr "$(node_ip "$n")" \
      --listen-addr "$(node_ip "$n"):2377" "$(node_ip 1):2377" >/dev/null \
      || die "node $n could not join the swarm"
  done
  local deadline=$((SECONDS + 60)) ready
  # Each node names itself by its address (all share the host's name): tests tell them apart.
  for n in "${NODES[@]}"; do
    dk 1 node update --label-add "dsoc=n$n" "$(dk "$n" info --format '{{.Swarm.NodeID}}')" >/dev/null
  done
  until ready=$(dk 1 node ls --format '{{.Status}} {{.ManagerStatus}}' | grep -cE '^Ready (Leader|Reachable)$'); [ "$ready" = 3 ]; do
    [ $SECONDS -lt $deadline ] || die "the swarm has $ready of 3 ready managers after 60s"
    sleep 0.5
  done
}

image_up() {
  local n
  for n in "${NODES[@]}"; do
    DOCKER_HOST="unix://$(node_sock "$n")" DSO_BUSYBOX_IMAGE=$IMAGE bash "$HERE/docker-up.sh" 2>&1 | sed 's/^/  /' >&2
    dk "$n" image inspect "$IMAGE" >/dev/null || die "node $n has no $IMAGE"
  done
}

write_env() {
  {
    echo "DSOC_REGISTRY=$REGISTRY"
    echo "DSOC_HOST_IP=$HOST_IP"
    for n in "${NODES[@]}"; do echo "DSOC_N${n}_SOCK=$(node_sock "$n")"; done
  } >"$RUN/bed.env"
}

up() {
  local t0=$SECONDS
  [ "$(id -u)" = 0 ] || die "the bed needs root (network namespaces, dockerd)"
  down
  mkdir -p "$DATA/logs" "$RUN" "$SHM"
  chmod 0700 "$SHM"
  network_up
  registry_up
  local n
  for n in "${NODES[@]}"; do start_node "$n"; done
  swarm_up
  image_up
  write_env
  say "ready in $((SECONDS - t0))s: 3 managers, registry $REGISTRY, sockets $RUN/n{1,2,3}.sock"
}

case "${1:-}" in
  up) up ;;
  down) down; say "removed" ;;
  stop-node) stop_node "${2:?node number}" ;;
  start-node) start_node "${2:?node number}" ;;
  status)
    for n in "${NODES[@]}"; do
      echo "node $n: pid $(pid_from "$(node_pidfile "$n")" dockerd) $(DK_TIMEOUT=5 dk "$n" info --format '{{.Swarm.LocalNodeState}} manager={{.Swarm.ControlAvailable}}' 2>/dev/null || echo down)"
    done ;;
  *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
