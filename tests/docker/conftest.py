"""The production image and the wheel, built by the project's own script (cached: seconds when
nothing changed), so these tests always exercise what ``docker/build-worker-image.sh`` makes.

A missing engine, base image tool or wheelhouse skips with the script's own reason, except under
CI=true, where it fails (``tests.fixtures.require``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from steadfetch.chaos.env.binaries import PROJECT_ROOT, ComponentMissing
from steadfetch.chaos.env.containers import docker_client
from tests.fixtures import require
from tests.worker.harness import wait_for

T = TypeVar("T")
SCRIPT = PROJECT_ROOT / "docker" / "build-worker-image.sh"
WORKER_IMAGE = os.environ.get("STEADFETCH_WORKER_IMAGE", "steadfetch/worker:local")
CHAOS_IMAGE = os.environ.get("STEADFETCH_CHAOS_IMAGE", "steadfetch/chaos:local")
#: Every container and network these tests start carries it (and a unique name).
LABEL = {"io.steadfetch.test": "docker-image"}


def run_script(*args: str) -> str:
    """Run docker/build-worker-image.sh; its MISSING lines become ComponentMissing."""
    env = {**os.environ, "STEADFETCH_BUILD_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        missing = [line for line in proc.stderr.splitlines() if "MISSING:" in line]
        if missing:
            raise ComponentMissing(missing[-1].split("MISSING:", 1)[1].strip())
        pytest.fail(f"{SCRIPT.name} {' '.join(args)} failed:\n{proc.stderr}", pytrace=False)
    return proc.stdout.strip()


def wait_logged(what: str, probe: Callable[[], T | None], container: Any) -> T:
    """``wait_for`` (60 s), and on a timeout the end of ``container``'s log in the failure."""
    try:
        return wait_for(what, probe, timeout=60.0)
    except AssertionError as exc:
        tail = container.logs(tail=30).decode(errors="replace")
        raise AssertionError(f"{exc}; log of {container.name}:\n{tail}") from None


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """steadfetch's wheel (built now, from the working tree) and its dependencies' wheels."""
    return Path(require(lambda: run_script("wheels")))


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    return require(docker_client)


@pytest.fixture(scope="session")
def worker_image(docker_engine: Any) -> str:
    """The production image, rebuilt from the working tree when it changed."""
    require(lambda: run_script("image"))
    return WORKER_IMAGE


@pytest.fixture(scope="session")
def chaos_image(worker_image: str) -> str:
    """The chaos suite's image (docker/chaos.Dockerfile) on top of the worker image."""
    require(lambda: run_script("chaos"))
    return CHAOS_IMAGE


@pytest.fixture
def network(docker_engine: Any) -> Iterator[Any]:
    """A Docker network of its own; afterwards it and the test containers named after it
    (``NETWORK-redis``, ``NETWORK-worker``, ..., running or not) are removed."""
    # Short: container names derived from it are host names on the network (63 chars at most).
    name = f"steadfetch-test-{uuid.uuid4().hex[:8]}"
    net = docker_engine.networks.create(name, labels=LABEL)
    try:
        yield net
    finally:
        for container in docker_engine.containers.list(
            all=True, filters={"name": f"{name}-", "label": "io.steadfetch.test"}
        ):
            container.remove(force=True)
        net.remove()
