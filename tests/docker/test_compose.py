"""docker/compose.yaml: jobs flow from the producer to three workers sharing one queue, and the
``chaos`` profile runs the chaos suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from steadfetch.chaos.env.binaries import PROJECT_ROOT, ComponentMissing
from steadfetch.worker.redis_server import free_port
from tests.fixtures import require
from tests.worker.harness import wait_for

pytestmark = pytest.mark.docker
COMPOSE_FILE = PROJECT_ROOT / "docker" / "compose.yaml"
PROCESSED = re.compile(rb"order (\d+) processed on (\S+)")


def compose_command() -> list[str]:
    """Debian's docker-compose 1.29 (scripts/dev setup installs it), else Compose v2's
    ``docker compose`` (e.g. on GitHub's runners); both read docker/compose.yaml."""
    found = shutil.which("docker-compose")
    if found is not None:
        return [found, "--no-ansi"]
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    if v2.returncode == 0:
        return ["docker", "compose", "--ansi", "never"]
    raise ComponentMissing("docker-compose: 'apt-get install docker-compose' (scripts/dev setup)")


class Compose:
    """``docker-compose -p PROJECT -f docker/compose.yaml ...`` for one throwaway project."""

    def __init__(self, command: list[str], engine: Any) -> None:
        self.project = f"steadfetch-test-{uuid.uuid4().hex[:8]}"
        self._engine = engine
        self._base = [*command, "-p", self.project, "-f", str(COMPOSE_FILE)]
        # Redis on a free loopback port; a brisk producer.
        self._env = {**os.environ, "STEADFETCH_REDIS_PORT": str(free_port()), "EXAMPLE_RATE": "20"}

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(
            [*self._base, *args], env=self._env, capture_output=True, text=True, timeout=180
        )
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stderr}"
        return proc.stdout

    def containers(self, service: str) -> list[Any]:
        labels = [
            f"com.docker.compose.project={self.project}",
            f"com.docker.compose.service={service}",
        ]
        return list(self._engine.containers.list(all=True, filters={"label": labels}))

    def processed(self) -> Counter[tuple[bytes, bytes]]:
        """(order, worker host) of every job the workers logged as processed (read through the
        engine's API: cheaper to poll than a docker-compose process)."""
        return Counter(
            hit for box in self.containers("worker") for hit in PROCESSED.findall(box.logs())
        )


@pytest.fixture
def compose(docker_engine: Any, worker_image: str) -> Iterator[Compose]:
    stack = Compose(require(compose_command), docker_engine)
    try:
        yield stack
    finally:
        stack("--profile", "chaos", "down", "-v", "--timeout", "15")


def test_three_workers_share_the_queue(compose: Compose) -> None:
    compose("up", "-d", "--scale", "worker=3")
    assert len(compose.containers("worker")) == 3

    def three_busy_workers() -> Counter[tuple[bytes, bytes]] | None:
        done = compose.processed()
        return done if len({host for _, host in done}) == 3 else None

    try:
        done = wait_for("all three workers to process orders", three_busy_workers, timeout=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{compose('logs', '--no-color', '--tail=20')}") from None
    orders = Counter(order for order, _ in done)
    assert [order for order, n in orders.items() if n > 1] == []  # shared, never duplicated

    # A stop is a clean shutdown for every service: SIGTERM, exit 0 (not SIGKILL's 137).
    compose("stop", "--timeout", "15")
    exits = {box.name: box.attrs["State"]["ExitCode"] for service in ("worker", "producer")
             for box in compose.containers(service)}  # fmt: skip
    assert set(exits.values()) == {0}, exits


def test_chaos_profile_runs_the_suite(compose: Compose, chaos_image: str) -> None:
    """The `chaos` profile's service runs the chaos suite (one scenario here; all by default)."""
    out = compose("run", "--rm", "chaos", "chaos", "run", "-k", "cut", "--env", "local",
                  "--junit", "/reports/junit.xml")  # fmt: skip
    assert "1 of 1 passed" in out
