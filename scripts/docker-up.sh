#!/usr/bin/env bash
# Makes the local Docker engine ready for DSO's demo and end-to-end tests, idempotently:
#   1. a dockerd that answers (started in the background when none does; log in
#      /var/log/dso-dockerd.log), coping with a stale pid file or a half-dead daemon;
#   2. swarm mode active on this node, as a manager (re-initialised when broken);
#   3. the tiny image dso-busybox:latest, imported from Debian's busybox-static
#      (there is no container registry).
# Safe to run any number of times, and after an earlier run was interrupted half-way.
set -euo pipefail

LOG=${DSO_DOCKERD_LOG:-/var/log/dso-dockerd.log}
PIDFILE=/var/run/docker.pid
IMAGE=${DSO_BUSYBOX_IMAGE:-dso-busybox:latest}
START_TIMEOUT=${DSO_DOCKERD_TIMEOUT:-90}

say() { echo "docker-up: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

engine_ok() { timeout 15 docker info >/dev/null 2>&1; }

# Alive and not a zombie (a killed daemon whose parent has not reaped it yet).
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
  [ "$state" != Z ] && [ "$state" != X ]
}

# The pid in /var/run/docker.pid when it names a live dockerd, else nothing.
daemon_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 0
  pid=$(tr -dc '0-9' <"$PIDFILE")
  if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    echo "$pid"
  fi
}

wait_engine() {
  local deadline=$((SECONDS + $1)) pid=${2:-}
  while ! engine_ok; do
    if [ -n "$pid" ] && ! pid_alive "$pid"; then return 1; fi
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}

start_engine() {
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found: run scripts/install-system-deps.sh (Debian's docker.io)"
  local pid
  pid=$(daemon_pid)
  if [ -n "$pid" ]; then
    # A dockerd runs but does not answer: it may still be starting. Give it a while,
    # then stop it (it is the one the pid file names) and start afresh.
    say "dockerd (pid $pid) does not answer yet; waiting"
    if wait_engine 30 "$pid"; then return 0; fi
    say "dockerd (pid $pid) is unresponsive; stopping it"
    stop_pid "$pid"
  fi
  local attempt newpid
  for attempt in 1 2; do
    clear_leftovers
    mkdir -p "$(dirname "$LOG")"
    say "starting dockerd (log: $LOG)"
    echo "=== dso docker-up: starting dockerd at $(date -u +%FT%TZ) ===" >>"$LOG"
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
    newpid=$!
    disown "$newpid" 2>/dev/null || true
    if wait_engine "$START_TIMEOUT" "$newpid"; then return 0; fi
    if pid_alive "$newpid"; then
      say "dockerd (pid $newpid) did not answer within ${START_TIMEOUT}s"
      break
    fi
    say "dockerd exited during start-up (attempt $attempt)"
  done
  say "last lines of $LOG:"
  grep -v '\[core\]' "$LOG" | tail -n 20 >&2 || true
  exit 1
}

stop_pid() {
  local pid=$1 _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 20); do pid_alive "$pid" || return 0; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
}

# Leftovers of a daemon that died: dockerd refuses to start over its pid file, and the
# containerd it had started (orphaned, its log pipe broken) makes the next one time out.
clear_leftovers() {
  if [ -e "$PIDFILE" ] && [ -z "$(daemon_pid)" ]; then
    say "removing stale $PIDFILE"
    rm -f "$PIDFILE"
  fi
  local cpidfile=/var/run/docker/containerd/containerd.pid cpid
  if [ -s "$cpidfile" ]; then
    cpid=$(tr -dc '0-9' <"$cpidfile")
    if pid_alive "$cpid" && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = containerd ] \
      && tr '\0' ' ' <"/proc/$cpid/cmdline" 2>/dev/null | grep -q /var/run/docker/containerd/; then
      say "stopping the containerd (pid $cpid) left by a dead dockerd"
      stop_pid "$cpid"
    fi
    rm -f "$cpidfile"
  fi
}

swarm_field() { docker info --format "{{.Swarm.$1}}" 2>/dev/null || true; }

ensure_swarm() {
  local state control
  state=$(swarm_field LocalNodeState)
  control=$(swarm_field ControlAvailable)
  if [ "$state" = active ] && [ "$control" = true ]; then
    return 0
  fi
  if [ "$state" = pending ]; then
    # Joining or re-joining: it may settle by itself within a few seconds.
    for _ in $(seq 1 10); do
      sleep 1
      state=$(swarm_field LocalNodeState)
      [ "$state" != pending ] && break
    done
    control=$(swarm_field ControlAvailable)
    [ "$state" = active ] && [ "$control" = true ] && return 0
  fi
  if [ "$state" != inactive ]; then
    say "swarm state is '${state:-unknown}' (manager: ${control:-?}); leaving it and initialising a new one"
    timeout 60 docker swarm leave --force >/dev/null 2>&1 || true
  fi
  say "initialising swarm (advertise address 127.0.0.1)"
  local out
  if ! out=$(timeout 120 docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 2>&1); then
    # A node left in an odd state may refuse: leave once more and retry.
    timeout 60 docker swarm leave --force >/dev/null 2>&1 || true
    out=$(timeout 120 docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 2>&1) \
      || die "docker swarm init failed: $out"
  fi
  for _ in $(seq 1 30); do
    [ "$(swarm_field LocalNodeState)" = active ] && [ "$(swarm_field ControlAvailable)" = true ] && return 0
    sleep 1
  done
  die "swarm did not become active"
}

find_busybox() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    # Only a static busybox works alone in an empty rootfs.
    # (ldd exits 1 on a static binary, so read its words rather than its status.)
    if [ -x "$b" ] && [[ "$(LC_ALL=C ldd "$b" 2>&1 || true)" == *"not a dynamic"* ]]; then
      echo "$b"
      return 0
    fi
  done
  return 1
}

ensure_image() {
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local bb
  bb=$(find_busybox) || die "no static busybox found: install Debian's busybox-static (scripts/install-system-deps.sh)"
  say "importing $IMAGE from $bb"
  local dir
  dir=$(mktemp -d /tmp/dso-busybox.XXXXXX)
  trap 'rm -rf "$dir"' RETURN
  mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/tmp" \
    "$dir/root" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/run" "$dir/var"
  chmod 1777 "$dir/tmp"
  cp "$bb" "$dir/bin/busybox"
  chmod 0755 "$dir/bin/busybox"
  local applet target
  # `busybox --list-full` prints each applet with its usual directory (bin/sh, usr/bin/env, ...).
  while read -r applet; do
    [ -n "$applet" ] || continue
    target="$dir/$applet"
    [ -e "$target" ] && continue
    mkdir -p "$(dirname "$target")"
    ln -s /bin/busybox "$target"
  done < <("$bb" --list-full)
  [ -e "$dir/bin/sh" ] || ln -s /bin/busybox "$dir/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -cf - . \
    | docker import --change 'CMD ["/bin/sh"]' --message 'DSO test image: Debian busybox-static' - "$IMAGE" >/dev/null
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "import of $IMAGE failed"
}

if ! engine_ok; then
  start_engine
fi
ensure_swarm
ensure_image
say "engine ready: swarm $(swarm_field LocalNodeState), image $IMAGE"
