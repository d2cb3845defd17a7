#!/usr/bin/env bash
# Installs Docker Compose v2 as a Docker CLI plugin (`docker compose`), idempotently, for the
# plain-host journey (`docker dso up` without swarm). There is no container registry or
# release download here: it is built from the Go module github.com/docker/compose/v2 at a
# pinned version. `go install ...@version` refuses that module (its go.mod has exclude
# directives), so the module is downloaded (`go mod download -json`) and built in its own
# directory with `-mod=mod`. Takes about two minutes of CPU the first time; afterwards the
# script only checks that the installed binary reports the pinned version.
#
# Usage: scripts/install-compose.sh [--dir DIR]
#   --dir DIR   install into DIR (default /usr/local/lib/docker/cli-plugins, a directory both
#               Docker CLIs on this machine, 28 and Debian's 20.10, search for plugins)
# Environment: COMPOSE_VERSION (default v2.40.3), GO (go binary, default: go on PATH or
#              /usr/local/go/bin/go).
set -euo pipefail

VERSION=${COMPOSE_VERSION:-v2.40.3}
DIR=/usr/local/lib/docker/cli-plugins
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "install-compose.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install-compose: $*" >&2; }
TARGET=$DIR/docker-compose

if [ -x "$TARGET" ] && "$TARGET" version --short 2>/dev/null | grep -qx "${VERSION#v}"; then
  say "$TARGET is Docker Compose ${VERSION} already"
  exit 0
fi

GO_BIN=${GO:-$(command -v go || true)}
[ -n "$GO_BIN" ] || GO_BIN=/usr/local/go/bin/go
[ -x "$GO_BIN" ] || { say "ERROR: no Go toolchain (go on PATH or /usr/local/go/bin/go) to build Docker Compose"; exit 1; }

say "downloading github.com/docker/compose/v2@${VERSION}"
MODDIR=$("$GO_BIN" mod download -json "github.com/docker/compose/v2@${VERSION}" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -n "$MODDIR" ] && [ -d "$MODDIR" ] || { say "ERROR: go mod download gave no module directory"; exit 1; }

mkdir -p "$DIR"
tmp=$(mktemp "$DIR/.docker-compose.XXXXXX")
trap 'rm -f "$tmp"' EXIT
say "building (about two minutes)"
# The module cache is read-only, and the version string is set the way Compose's Makefile does.
(cd "$MODDIR" && GOFLAGS=-mod=mod "$GO_BIN" build -trimpath \
  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${VERSION}" \
  -o "$tmp" ./cmd)
chmod 0755 "$tmp"
mv -f "$tmp" "$TARGET"
trap - EXIT
"$TARGET" version >&2
say "installed $TARGET"
