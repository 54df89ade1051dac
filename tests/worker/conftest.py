"""Fixtures for the worker tests: a record file, a redis-py oracle, and worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.workload.process import STEADFETCH
from steadfetch.fetcher import SyncProducer
from tests.worker.harness import APP, ROOT, WorkerUnderTest, clean_env

StartWorker = Callable[..., WorkerUnderTest]


@pytest.fixture
def record_path(tmp_path: Path) -> Path:
    return tmp_path / "executions.jsonl"


@pytest.fixture
def oracle(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Direct redis-py access, independent of the code under test."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def producer(redis_server: RedisServer) -> Iterator[SyncProducer]:
    with SyncProducer(redis_server.url, deadline=10.0) as prod:
        yield prod


@pytest.fixture
def start_worker(tmp_path: Path, record_path: Path) -> Iterator[StartWorker]:
    """``start_worker(redis_url, *flags, command="run", env={...})`` → a running WorkerUnderTest."""
    started: list[WorkerUnderTest] = []

    def start(
        redis_url: str | None,
        *flags: str,
        command: str = "run",
        app: str | None = APP,
        env: dict[str, str] | None = None,
    ) -> WorkerUnderTest:
        args = [command]
        if command == "run" and app is not None:
            args.append(app)
        if redis_url is not None:
            args += ["--redis-url", redis_url]
        defaults = [
            "--heartbeat-interval",
            "0.5",
            "--recovery-interval",
            "1",
            "--grace-period",
            "5",
        ]
        if command == "run":
            args += [*defaults, *flags]
        else:
            args += list(flags)
        full_env = clean_env(STEADFETCH_TEST_RECORD=str(record_path), PYTHONFAULTHANDLER="1")
        full_env.update(env or {})
        name = f"worker-{len(started)}"
        argv = [str(STEADFETCH), *args]
        proc = WorkerUnderTest(name, argv, full_env, tmp_path / f"{name}.log", cwd=ROOT).spawn()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()
