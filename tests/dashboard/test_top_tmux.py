"""End to end: ``steadfetch top`` in a real terminal (tmux), watching a real worker
(``steadfetch run``) on a real redis-server, across a Redis restart; then ``q`` quits with 0 and
the terminal is back in canonical mode."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable

import pytest

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.dashboard.terminal import STEADFETCH, Tmux, require_steadfetch, retry_attempt

pytestmark = pytest.mark.timeout(120)
WORKER_ID = "e2e-worker"


def worker_row(screen: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith(WORKER_ID)), "")


def queue_depth(screen: str, queue: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith(queue)).split()[1]


def beat_after(moment: float) -> Callable[[str], bool]:
    """The worker row shows a heartbeat written after ``moment`` (its age is read off the
    "hb age" column, which follows the "busy" column ``n/limit``)."""

    def check(screen: str) -> bool:
        row = worker_row(screen)
        age = re.search(r"\d+/\d+\s+(\d+(?:\.\d+)?) s\b", row)
        return (
            age is not None
            and "connected" in row
            and "STALE" not in row
            # the frame may be a refresh (0.2 s) old and ages are rounded: keep a margin
            and time.time() - float(age.group(1)) > moment + 0.3
        )

    return check


def test_top_in_a_terminal_across_a_redis_restart(
    tmux: Tmux, aof_redis: RedisServer, worker: subprocess.Popen[bytes]
) -> None:
    with SyncProducer(aof_redis.url, deadline=10) as producer:
        for n in range(7):
            producer.enqueue("tick", queue="parked", job_id=f"parked-{n}")  # no worker reads it
    # After top exits, the shell prints its status and the terminal modes (icanon, echo).
    command = f"{STEADFETCH} top --redis-url {aof_redis.url} --refresh 0.2; "
    command += 'echo "top exited $?"; stty -a; echo "stty done"'
    tmux.start("top", ["sh", "-c", command])

    screen = tmux.wait_for("top", beat_after(0), "worker row")
    assert "steadfetch top" in screen
    assert "0/4" in worker_row(screen)  # in flight / concurrency of the real worker
    assert queue_depth(screen, "parked") == "7"

    aof_redis.stop()
    screen = tmux.wait_for(
        "top", lambda s: "● reconnecting" in s and "ConnectionRefusedError" in s, "outage panel"
    )
    attempt = retry_attempt(screen)
    assert attempt is not None, screen  # down for, attempt and next wait all shown
    # The server's close of the pooled connection is replaced quietly (that alone is no
    # outage); the refused reconnect is attempt 1.
    assert attempt >= 1
    assert WORKER_ID in screen  # the last data read stays on screen
    assert worker.poll() is None  # the worker rides the outage out too

    aof_redis.start()
    restarted = time.time()
    screen = tmux.wait_for("top", beat_after(restarted), "heartbeat written after the restart")
    assert "● reconnecting" not in screen
    assert queue_depth(screen, "parked") == "7"

    tmux("send-keys", "-t", "top", "q")
    screen = tmux.wait_for("top", lambda s: "stty done" in s, "exit line", within=10)
    assert "top exited 0" in screen
    assert " icanon" in screen and " echo" in screen  # the terminal was restored
    assert worker.poll() is None


def test_top_exits_0_on_ctrl_c(tmux: Tmux, redis_server: RedisServer) -> None:
    require_steadfetch("top")
    tmux.start("top", [str(STEADFETCH), "top", "--redis-url", redis_server.url])
    tmux.wait_for("top", lambda s: "no workers have a heartbeat" in s, "empty cluster view")
    tmux("send-keys", "-t", "top", "C-c")
    assert tmux.exit_status("top") == 0


def test_top_no_color_flag_draws_without_colours(tmux: Tmux, redis_server: RedisServer) -> None:
    require_steadfetch("top")
    # An SGR foreground colour (30-38, 90-97); 39 is "default colour" and does not count.
    colour = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])[;m]")
    tmux.start("coloured", [str(STEADFETCH), "top", "--redis-url", redis_server.url])
    tmux.start("plain", [str(STEADFETCH), "top", "--no-color", "--redis-url", redis_server.url])
    for name in ("coloured", "plain"):
        tmux.wait_for(name, lambda s: "no workers have a heartbeat" in s, "empty cluster view")
    coloured = tmux("capture-pane", "-e", "-p", "-t", "coloured")
    plain = tmux("capture-pane", "-e", "-p", "-t", "plain")
    assert colour.search(coloured)  # the check can fail: colours are there by default
    assert not colour.search(plain), plain
    for name in ("coloured", "plain"):
        tmux("send-keys", "-t", name, "q")
        assert tmux.exit_status(name) == 0
