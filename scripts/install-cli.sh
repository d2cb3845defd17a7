#!/usr/bin/env bash
# Installs the Docker CLI plugin `docker dso` for the current user, idempotently: a small
# wrapper at $DOCKER_CONFIG/cli-plugins/docker-dso (default ~/.docker/cli-plugins) that runs
# this checkout's compiled CLI (dist/cli/docker-dso.js, built with `npm run build` when missing).
#
# Usage: scripts/install-cli.sh [--dir DIR] [--uninstall]
#   --dir DIR     install into DIR instead of $DOCKER_CONFIG/cli-plugins
#   --uninstall   remove the wrapper
# Environment: DOCKER_CONFIG (Docker's config directory), NODE (node binary, default: the
#              node found on PATH now, recorded in the wrapper).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
UNINSTALL=0

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "install-cli.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install-cli: $*" >&2; }
TARGET=$DIR/docker-dso

if [ "$UNINSTALL" = 1 ]; then
  rm -f "$TARGET"
  say "removed $TARGET"
  exit 0
fi

NODE_BIN=${NODE:-$(command -v node || true)}
[ -n "$NODE_BIN" ] || { say "ERROR: node not found on PATH (Node.js 20 or later is needed)"; exit 1; }
ENTRY=$ROOT/dist/cli/docker-dso.js
if [ ! -f "$ENTRY" ]; then
  say "compiling (npm run build)"
  (cd "$ROOT" && npm run --silent build)
fi
[ -f "$ENTRY" ] || { say "ERROR: $ENTRY is missing after npm run build"; exit 1; }

mkdir -p "$DIR"
tmp=$(mktemp "$DIR/.docker-dso.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOF
#!/bin/sh
# docker dso: the DSO Docker CLI plugin (installed by $ROOT/scripts/install-cli.sh)
exec "$NODE_BIN" "$ENTRY" "\$@"
EOF
chmod 0755 "$tmp"
if [ -f "$TARGET" ] && cmp -s "$tmp" "$TARGET"; then
  say "$TARGET is up to date"
else
  mv -f "$tmp" "$TARGET"
  say "installed $TARGET -> $ENTRY"
fi

# Docker lists a plugin only when it answers the metadata handshake.
if ! "$TARGET" docker-cli-plugin-metadata >/dev/null; then
  say "ERROR: $TARGET does not answer docker-cli-plugin-metadata"
  exit 1
fi
if command -v docker >/dev/null 2>&1 && [ -z "${DOCKER_CONFIG:-}" ] && [ "$DIR" != "$HOME/.docker/cli-plugins" ]; then
  say "note: docker looks for plugins in ~/.docker/cli-plugins (or \$DOCKER_CONFIG/cli-plugins); $DIR is elsewhere"
fi
say "try: docker dso --help"
