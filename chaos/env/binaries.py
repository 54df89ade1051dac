"""Where the real components' binaries are, and what to do when one is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_BIN = PROJECT_ROOT / "bin"
#: In a checkout, `scripts/dev setup` installs and builds every component; a pip install has no
#: scripts/, so its hints say how to get each binary by hand.
IN_CHECKOUT = (PROJECT_ROOT / "scripts" / "dev").is_file()
SETUP_HINT = "run `scripts/dev setup` (it installs and builds every component)"


def remedy(component: str, *, in_checkout: bool = IN_CHECKOUT) -> str:
    """How to get ``component`` here: ``redis-server``, ``toxiproxy-server``, ``docker``
    (an engine that answers) or ``images`` (the local test images)."""
    if component in ("docker", "images"):
        if in_checkout:
            return (
                SETUP_HINT
                if component == "docker"
                else f"docker/build-images.sh builds it ({SETUP_HINT})"
            )
        return (
            "start a Docker engine (Debian: apt-get install docker.io; then dockerd)"
            if component == "docker"
            else "set STEADFETCH_REDIS_IMAGE and STEADFETCH_TOXIPROXY_IMAGE to images this "
            "engine has or can pull (e.g. redis:7, ghcr.io/shopify/toxiproxy:2.12.0), or use "
            "--env local"
        )
    if component == "redis-server":
        if in_checkout:
            return f"apt-get install redis-server, or {SETUP_HINT}"
        return (
            "install Redis >= 6.2 (Debian/Ubuntu: apt-get install redis-server; macOS: brew "
            "install redis) so that redis-server is on PATH, or set "
            "STEADFETCH_REDIS_SERVER=/path/to/redis-server"
        )
    if in_checkout:
        return f"Toxiproxy v2.12.0 is built by {SETUP_HINT}"
    return (
        "build Toxiproxy v2.12.0 with Go >= 1.23: `go install "
        "github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0`, then put $(go env GOPATH)/bin/server "
        "on PATH as toxiproxy-server, or set STEADFETCH_TOXIPROXY_SERVER=/path/to/it"
    )


class ComponentMissing(RuntimeError):
    """A real component (a binary, the Docker engine, an image) is not available here.

    Tests turn this into a skip with the same message, except under ``CI=true`` where a missing
    component fails the run: CI must never pass by skipping what it was meant to exercise.
    """


def find_binary(name: str, env_var: str, remedy: str) -> str:
    """Locate ``name``: ``$env_var`` first, then the project's ``bin/``, then ``PATH``."""
    override = os.environ.get(env_var)
    if override:
        if not os.access(override, os.X_OK):
            raise ComponentMissing(f"{env_var}={override} is not an executable file")
        return override
    local = PROJECT_BIN / name
    if os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ComponentMissing(f"{name} not found (bin/ or PATH): {remedy}")


def redis_server_binary() -> str:
    return find_binary("redis-server", "STEADFETCH_REDIS_SERVER", remedy("redis-server"))


def redis_cli_binary() -> str:
    """``redis-cli`` (it ships with redis-server: the same packages install both)."""
    return find_binary("redis-cli", "STEADFETCH_REDIS_CLI", remedy("redis-server"))


#: Why the valkey-server binary exists here (ComponentMissing messages say it).
VALKEY_PURPOSE = "a server with WAITAOF (Redis >= 7.2) for the `--durability aof` tests"


def valkey_server_binary() -> str:
    """``valkey-server`` (Redis 7.2-compatible, has ``WAITAOF``): ``scripts/dev setup`` puts
    Debian's bookworm-backports build into ``bin/``. A binary that is there but does not run (its
    shared libraries missing on this machine) is missing too, and the message says which."""
    binary = find_binary(
        "valkey-server",
        "STEADFETCH_VALKEY_SERVER",
        f"{VALKEY_PURPOSE}; `scripts/dev setup` downloads it from deb.debian.org (see "
        ".artifacts/valkey.log when that failed)"
        if IN_CHECKOUT
        else f"{VALKEY_PURPOSE}; install valkey-server or redis-server >= 7.2 and set "
        "STEADFETCH_VALKEY_SERVER=/path/to/it",
    )
    try:
        ran = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComponentMissing(f"{binary} ({VALKEY_PURPOSE}) does not run: {exc}") from exc
    if ran.returncode != 0:
        why = (ran.stderr or ran.stdout).decode(errors="replace").strip()
        raise ComponentMissing(
            f"{binary} ({VALKEY_PURPOSE}) does not run: {why} (Debian: apt-get install "
            "redis-server installs the libraries it needs)"
        )
    return binary


def toxiproxy_server_binary() -> str:
    return find_binary(
        "toxiproxy-server",
        "STEADFETCH_TOXIPROXY_SERVER",
        remedy("toxiproxy-server"),
    )
