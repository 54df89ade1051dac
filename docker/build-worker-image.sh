#!/usr/bin/env bash
# Builds the production worker image (docker/worker.Dockerfile) without a container registry.
#
#   docker/build-worker-image.sh          the wheelhouse, then the image $STEADFETCH_WORKER_IMAGE
#   docker/build-worker-image.sh wheels   only the wheelhouse; prints its directory
#   docker/build-worker-image.sh chaos    also the chaos suite's image $STEADFETCH_CHAOS_IMAGE
#                                         (docker/chaos.Dockerfile; compose profile `chaos`)
#
# Idempotent and cached, so a second run takes seconds:
# - the base image $STEADFETCH_WORKER_BASE (default steadfetch/python-base:bookworm) is built
#   only when missing: mmdebstrap writes a minimal Debian bookworm root filesystem with python3
#   and `docker import` turns it into an image (no registry needed). Set STEADFETCH_WORKER_BASE to
#   an official image (python:3.11-slim-bookworm) where a registry can be reached; pip inside the
#   build then fetches from the index whatever the wheelhouse lacks.
# - the wheelhouse (.artifacts/wheelhouse) is built on the host, because pip inside a container
#   build cannot reach the package index here: the dependencies' wheels again only when
#   the requirements in pyproject.toml change; steadfetch's own wheel every run, from a clean copy of the sources
#   (setuptools' build/ keeps deleted modules) and with a fixed timestamp, so unchanged sources
#   give the same bytes and Docker's layer cache holds.
# FORCE=1 rebuilds the base image too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${STEADFETCH_WORKER_IMAGE:-steadfetch/worker:local}"
CHAOS_IMAGE="${STEADFETCH_CHAOS_IMAGE:-steadfetch/chaos:local}"
LOCAL_BASE="steadfetch/python-base:bookworm"
BASE="${STEADFETCH_WORKER_BASE:-$LOCAL_BASE}"
# Not $PYTHON: scripts/dev takes that as the interpreter to create .venv with.
PYTHON="${STEADFETCH_BUILD_PYTHON:-$ROOT/.venv/bin/python}"
ART="$ROOT/.artifacts"
WHEELHOUSE="$ART/wheelhouse"
# 1980-01-01: the earliest time a zip entry can carry.
export SOURCE_DATE_EPOCH=315532800

say() { printf '[steadfetch] %s\n' "$*" >&2; }
die() { printf '[steadfetch] MISSING: %s\n' "$*" >&2; exit 1; }
have_image() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    [ "$BASE" = "$LOCAL_BASE" ] || return 0  # an official image: the build pulls it
    have_image "$BASE" && return 0
    command -v mmdebstrap >/dev/null || die "mmdebstrap: 'apt-get install mmdebstrap' (or set STEADFETCH_WORKER_BASE=python:3.11-slim-bookworm where a registry is reachable)"
    local tmp; tmp="$(mktemp -d)"
    say "building the base image $BASE with mmdebstrap (Debian bookworm, python3; about a minute)"
    # No docs, man pages or translations: nothing in the image reads them.
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        bookworm "$tmp/base.tar" >"$ART/mmdebstrap.log" 2>&1 \
        || { rm -rf "$tmp"; die "mmdebstrap failed (see $ART/mmdebstrap.log)"; }
    docker import --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$BASE" >/dev/null
    rm -rf "$tmp"
}

build_wheels() {
    [ -x "$PYTHON" ] || die "$PYTHON: run scripts/dev setup first (or set STEADFETCH_BUILD_PYTHON to a python with setuptools >= 77)"
    mkdir -p "$WHEELHOUSE"
    local src; src="$(mktemp -d)"
    # Exactly what the distribution is made of (pyproject.toml's packages and metadata files).
    cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/LICENSE" "$ROOT/steadfetch" "$ROOT/fetcher" "$ROOT/worker" "$ROOT/chaos" "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    # Rebuilt when the requirements, this script or the Python change (not on other edits).
    local want; want="$(cat <("$PYTHON" -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb"))["project"]; print(p["dependencies"], p["optional-dependencies"]["chaos"])' "$ROOT/pyproject.toml") \
        "$ROOT/docker/build-worker-image.sh" <("$PYTHON" -VV) | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$WHEELHOUSE/deps/.stamp" 2>/dev/null)" != "$want" ]; then
        say "downloading the dependencies' wheels into .artifacts/wheelhouse/deps"
        rm -rf "$WHEELHOUSE/deps"
        # With the chaos extra's too (the chaos image installs them; the worker image does not).
        "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-build-isolation -w "$WHEELHOUSE/deps" "$src[chaos]" \
            >"$ART/wheelhouse.log" 2>&1 || { rm -rf "$src"; die "pip wheel failed (see $ART/wheelhouse.log)"; }
        # redis-py needs async-timeout on Python < 3.11.3 (Debian bookworm has 3.11.2), whatever the host runs.
        "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$WHEELHOUSE/deps" \
            "async-timeout>=4.0.3" >>"$ART/wheelhouse.log" 2>&1 || { rm -rf "$src"; die "pip download failed (see $ART/wheelhouse.log)"; }
        rm -f "$WHEELHOUSE"/deps/steadfetch-*.whl
        echo "$want" >"$WHEELHOUSE/deps/.stamp"
    fi
    rm -f "$WHEELHOUSE"/steadfetch-*.whl
    "$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WHEELHOUSE" "$src" \
        >>"$ART/wheelhouse.log" 2>&1 || { rm -rf "$src"; die "building steadfetch's wheel failed (see $ART/wheelhouse.log)"; }
    rm -rf "$src"
}

docker_build() {  # docker_build DOCKERFILE IMAGE BUILD-ARG...: the context is the wheelhouse + example/
    local dockerfile="$1" image="$2" ctx="$ART/worker-context" offline=0 started=$SECONDS
    shift 2
    [ "$BASE" = "$LOCAL_BASE" ] && offline=1
    rm -rf "$ctx"; mkdir -p "$ctx/wheels"
    cp "$WHEELHOUSE"/steadfetch-*.whl "$WHEELHOUSE"/deps/*.whl "$ctx/wheels/"
    cp -r "$ROOT/docker/example" "$ctx/example"
    find "$ctx/example" -name __pycache__ -prune -exec rm -rf {} +
    say "building $image"
    docker build -q -f "$ROOT/docker/$dockerfile" --build-arg "PIP_OFFLINE=$offline" "$@" \
        -t "$image" "$ctx" >"$ART/$dockerfile.log" 2>&1 \
        || { cat "$ART/$dockerfile.log" >&2; die "docker build of $image failed"; }
    say "$image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'), docker build $((SECONDS - started)) s"
}

build_image() {
    docker_build worker.Dockerfile "$IMAGE" --build-arg "BASE=$BASE"
}

build_chaos_image() {
    docker_build chaos.Dockerfile "$CHAOS_IMAGE" --build-arg "WORKER_IMAGE=$IMAGE" \
        --build-arg "REDIS_IMAGE=${STEADFETCH_REDIS_IMAGE:-steadfetch/redis:local}" \
        --build-arg "TOXIPROXY_IMAGE=${STEADFETCH_TOXIPROXY_IMAGE:-steadfetch/toxiproxy:local}"
}

mkdir -p "$ART"
case "${1:-image}" in
    wheels) build_wheels; echo "$WHEELHOUSE" ;;
    image) build_base; build_wheels; build_image ;;
    chaos) build_base; build_wheels; build_image; build_chaos_image ;;
    *) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
