#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, only when missing:
# docker.io (engine), postgresql (database secrets), busybox-static (tiny image rootfs), openssl, binutils,
# docker-registry (a local registry: `docker dso init --plugin-image` tests install from it, and
# the three-manager bed of `make test-cluster` pulls the plugin from its own instance).
set -euo pipefail
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /usr/lib/postgresql ] || need+=(postgresql)
# Only a static busybox works alone in an image (ldd exits 1 on it: read its words instead).
[ -x /bin/busybox ] && [[ "$(LC_ALL=C ldd /bin/busybox 2>&1 || true)" == *"not a dynamic"* ]] || need+=(busybox-static)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# strip, for the plugin's node binary (plugin/build.sh).
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
