"""Real terminals (tmux) and real ``steadfetch`` processes for the dashboard's end-to-end tests.

A missing tmux or a ``steadfetch run`` that cannot start skips the test with the reason, and
fails it under CI=true (as ``tests.fixtures.require`` does for Redis and Toxiproxy).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from steadfetch.chaos.env.redis_server import RedisServer
from tests.dashboard.terminal import (
    APP,
    FAST_WORKER,
    REPO,
    STEADFETCH,
    Tmux,
    missing,
    require_steadfetch,
    run_env,
)
from tests.fixtures import require


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    binary = shutil.which("tmux")
    if binary is None:
        missing("tmux is not installed (apt-get install tmux)")
    assert binary is not None
    server = Tmux(binary)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server with an AOF, so queued jobs survive a restart."""
    server = require(lambda: RedisServer(appendonly=True).start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def worker(aof_redis: RedisServer, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``steadfetch run`` (id ``e2e-worker``, concurrency 4) as its own process."""
    require_steadfetch()
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [str(STEADFETCH), "run", APP, "--redis-url", aof_redis.url, "--queues", "default",
         "--worker-id", "e2e-worker", "--concurrency", "4", *FAST_WORKER],
        cwd=REPO, env=run_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
