"""Attacks from outside: inputs, signals and Redis settings no other test names, each against
the real binary and a real redis-server. Each test here failed before its fix (or is marked
xfail with the reason, for code being restructured)."""

from __future__ import annotations

import os
import socket

import pytest

from chaos.env.redis_server import RedisServer
from tests.worker.conftest import StartWorker
from tests.worker.test_cli import steadfetch


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--queues", "a,b,a"], {}),
        (["--queues", "a, a"], {}),
        ([], {"STEADFETCH_QUEUES": "x,x"}),
    ],
)
def test_a_queue_named_twice_is_a_usage_error_not_a_traceback(
    args: list[str], env: dict[str, str]
) -> None:
    # was: ValueError from Fetcher.__init__, a traceback and exit 1 (a supervisor restarts such
    # a child forever, since only exit 2 stops it)
    result = steadfetch(
        "run", "tests.worker.apps:app", "--redis-url", "redis://127.0.0.1:1/0", *args,
        env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--queues: queue " in result.stderr and "named more than once" in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1", "no-such-host.invalid"])
def test_a_metrics_port_that_cannot_be_bound_is_one_line_and_exit_2(
    redis_server: RedisServer, start_worker: StartWorker, host: str
) -> None:
    # was: the OSError/gaierror of asyncio.start_server inside the TaskGroup, a 40-line
    # ExceptionGroup traceback and exit 1 (a supervisor restarts such a child forever)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker(redis_server.url, "--metrics-host", host, "--metrics-port", str(port))
        assert worker.wait() == 2, worker.log
    assert "Traceback" not in worker.log, worker.log
    line = worker.wait_log(r"ERROR worker\.cli: cannot continue: cannot serve metrics .*").group()
    assert f"{host}:{port}" in line and "--metrics-port" in line
