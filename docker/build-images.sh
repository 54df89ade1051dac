#!/usr/bin/env bash
# Builds the two images the tests use, FROM scratch, from this host's binaries: no registry needed.
#   $STEADFETCH_REDIS_IMAGE      (default steadfetch/redis:local)      from the host's redis-server
#   $STEADFETCH_TOXIPROXY_IMAGE  (default steadfetch/toxiproxy:local)  from bin/toxiproxy-server
# Users with a registry can set these to redis:7 and ghcr.io/shopify/toxiproxy:2.12.0 instead;
# images that already exist are not rebuilt (FORCE=1 rebuilds).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REDIS_IMAGE="${STEADFETCH_REDIS_IMAGE:-steadfetch/redis:local}"
TOXIPROXY_IMAGE="${STEADFETCH_TOXIPROXY_IMAGE:-steadfetch/toxiproxy:local}"

have() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

build_redis() {
    have "$REDIS_IMAGE" && return 0
    local src ctx; src="$(command -v redis-server)"; ctx="$(mktemp -d)"
    mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/data" "$ctx/rootfs/tmp"
    cp -L "$src" "$ctx/rootfs/usr/local/bin/redis-server"
    # The shared libraries ldd lists, at the same paths, plus the dynamic loader.
    ldd "$src" | grep -oE '/[^ ]+' | while read -r lib; do
        mkdir -p "$ctx/rootfs$(dirname "$lib")"; cp -L "$lib" "$ctx/rootfs$lib"
    done
    cp "$ROOT/docker/redis.Dockerfile" "$ctx/Dockerfile"
    echo "[steadfetch] building $REDIS_IMAGE from $src" >&2
    docker build -q -t "$REDIS_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
}

build_toxiproxy() {
    have "$TOXIPROXY_IMAGE" && return 0
    local src="$ROOT/bin/toxiproxy-server" ctx
    [ -x "$src" ] || { echo "[steadfetch] MISSING: $src (scripts/dev setup builds it)" >&2; return 1; }
    ctx="$(mktemp -d)"
    cp "$src" "$ctx/toxiproxy"
    cp "$ROOT/docker/toxiproxy.Dockerfile" "$ctx/Dockerfile"
    echo "[steadfetch] building $TOXIPROXY_IMAGE from $src" >&2
    docker build -q -t "$TOXIPROXY_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
}

build_redis
build_toxiproxy
