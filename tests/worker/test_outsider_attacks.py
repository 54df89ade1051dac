"""Attacks from outside: inputs, signals and Redis settings no other test names, each against
the real binary and a real redis-server. Each test here failed before its fix (or is marked
xfail with the reason, for code being restructured)."""

from __future__ import annotations

import os

import pytest

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
