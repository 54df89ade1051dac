"""End to end: ``steadfetch run --live`` in a real terminal (tmux) on a real redis-server.

The dashboard draws at the bottom, log lines scroll above it, the Redis restart shows as an
outage (attempt, next wait) and then as recovering, and Ctrl-C still stops the worker cleanly.
"""

from __future__ import annotations

import pytest

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.dashboard.terminal import (
    APP,
    FAST_WORKER,
    STEADFETCH,
    Tmux,
    require_steadfetch,
    retry_attempt,
)

pytestmark = pytest.mark.timeout(120)


def above(screen: str, log_text: str, dashboard_text: str) -> bool:
    """``log_text`` is on screen, above ``dashboard_text``."""
    return log_text in screen and dashboard_text in screen.split(log_text, 1)[1]


def test_live_dashboard_in_a_terminal_across_a_redis_restart(
    tmux: Tmux, aof_redis: RedisServer
) -> None:
    require_steadfetch()
    argv = [str(STEADFETCH), "run", APP, "--redis-url", aof_redis.url, "--live"]
    tmux.start("live", [*argv, "--worker-id", "live-worker", "--concurrency", "8", *FAST_WORKER])
    screen = tmux.wait_for("live", lambda s: "Redis: connected" in s, "connected dashboard")
    assert "live-worker" in screen and "0/8" in screen
    assert above(screen, "INFO worker", "Redis: connected")  # logs flow above the view

    with SyncProducer(aof_redis.url, deadline=10) as producer:
        producer.enqueue_many([{"task": "tick", "args": [0.001]} for _ in range(25)])
    tmux.wait_for("live", lambda s: "processed 25 " in s, "25 processed jobs")

    aof_redis.stop()
    screen = tmux.wait_for(
        "live", lambda s: "Redis: outage" in s and retry_attempt(s) is not None, "outage panel"
    )
    assert "● reconnecting" in screen
    assert above(screen, "unreachable while", "Redis: outage")  # the outage log line, above

    aof_redis.start()
    screen = tmux.wait_for("live", lambda s: "Redis: recovering" in s, "recovering panel")
    assert above(screen, "reachable again after", "Redis: recovering")

    tmux("send-keys", "-t", "live", "C-c")
    status = tmux.exit_status("live")
    assert status == 0, tmux.screen("live")
