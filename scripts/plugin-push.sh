#!/usr/bin/env bash
# Publishes the managed plugin built from plugin/ to a registry, as
# $REGISTRY/dso/vault:<version> and $REGISTRY/dso/vault:latest, through whatever engine
# DOCKER_HOST (or the current docker context) names: `docker plugin create` then
# `docker plugin push` on that engine, then the local copies are removed again (installs
# come from the registry, with their own alias).
#
# Usage: REGISTRY=host:port scripts/plugin-push.sh        (make plugin-push REGISTRY=host:port)
#   REGISTRY      registry host:port, or empty for Docker Hub (pushes dso/vault:...)
#   VERSION       tag to push (default: package.json's version); also written into the
#                 rootfs's /app/package.json
#   PUSH_LATEST   0 pushes the version tag only (default 1: :latest too)
#   REPOSITORY    repository path (default dso/vault)
# An engine that pushes to a plain-http registry needs it in its --insecure-registry list.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPOSITORY=${REPOSITORY:-dso/vault}
VERSION=${VERSION:-$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")}
PUSH_LATEST=${PUSH_LATEST:-1}
NAME=${REGISTRY:+$REGISTRY/}$REPOSITORY

say() { echo "plugin-push: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[[ "$VERSION" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "VERSION '$VERSION' is not a valid tag"
timeout 20 docker info >/dev/null 2>&1 || die "no Docker engine answers at ${DOCKER_HOST:-the current context}"

bash "$ROOT/plugin/build.sh" --no-create --version "$VERSION"

tags=("$VERSION")
[ "$PUSH_LATEST" = 1 ] && [ "$VERSION" != latest ] && tags+=(latest)
t0=$SECONDS
for tag in "${tags[@]}"; do
  ref=$NAME:$tag
  if docker plugin inspect "$ref" >/dev/null 2>&1; then
    # A leftover of an interrupted push; an enabled one is someone's installed plugin.
    [ "$(docker plugin inspect --format '{{.Enabled}}' "$ref")" = false ] \
      || die "$ref is installed and enabled on this engine: disable or remove it first"
    docker plugin rm "$ref" >/dev/null
  fi
  say "creating $ref"
  timeout 300 docker plugin create "$ref" "$ROOT/plugin/build" >/dev/null
  say "pushing $ref"
  if ! timeout 600 docker plugin push "$ref" >/dev/null; then
    docker plugin rm "$ref" >/dev/null 2>&1 || true
    die "docker plugin push $ref failed"
  fi
  docker plugin rm "$ref" >/dev/null
done
say "pushed ${tags[*]/#/$NAME:} in $((SECONDS - t0))s"
