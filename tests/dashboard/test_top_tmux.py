"""End to end: ``steadfetch top`` in a real terminal (tmux), watching a real worker
(``steadfetch run``) on a real redis-server, across a Redis restart; then ``q`` quits with 0 and
the terminal is back in canonical mode.

Skips (fails under CI=true) when tmux or ``steadfetch run`` is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaos.env.redis_server import RedisServer
from chaos.fixtures import IN_CI, require
from fetcher import SyncProducer

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
STEADFETCH = Path(sys.executable).with_name("steadfetch")
WORKER_ID = "e2e-worker"


def missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def run_env() -> dict[str, str]:
    # PYTHONPATH: the worker imports the test App (tests.dashboard.e2e_app) from the checkout.
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    """``tmux(*args)`` on a private server socket, killed after the test."""
    binary = shutil.which("tmux")
    if binary is None:
        missing("tmux is not installed (apt-get install tmux)")
    assert binary is not None
    socket = f"steadfetch-top-{os.getpid()}"

    def call(*args: str) -> str:
        done = subprocess.run(
            [binary, "-L", socket, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    try:
        yield call
    finally:
        subprocess.run([binary, "-L", socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server with an AOF, so queued jobs survive the restart."""
    server = require(lambda: RedisServer(appendonly=True).start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def worker(aof_redis: RedisServer, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``steadfetch run`` as its own process, beating every 0.5 s, retrying at most 0.5 s apart."""
    probe = subprocess.run(
        [str(STEADFETCH), "run", "--help"], capture_output=True, env=run_env(), timeout=30
    )
    if probe.returncode != 0:
        tail = probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
        missing(f"`steadfetch run` is not available yet: {tail}")
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [
            str(STEADFETCH), "run", "tests.dashboard.e2e_app:app",
            "--redis-url", aof_redis.url, "--queues", "default", "--worker-id", WORKER_ID,
            "--heartbeat-interval", "0.5", "--retry-base", "0.1", "--retry-cap", "0.5",
            "--concurrency", "4",
        ],
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


def wait_for_screen(
    tmux: Callable[..., str], check: Callable[[str], bool], what: str, within: float = 20.0
) -> str:
    """Poll the pane until ``check(screen)`` holds; on timeout show the last screen."""
    deadline = time.monotonic() + within
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", "top")
        if check(screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"no {what} on screen within {within} s; last screen:\n{screen}")


def worker_row(screen: str) -> str:
    return next((line for line in screen.splitlines() if line.startswith(WORKER_ID)), "")


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
    tmux: Callable[..., str], aof_redis: RedisServer, worker: subprocess.Popen[bytes]
) -> None:
    with SyncProducer(aof_redis.url, deadline=10) as producer:
        for n in range(7):
            producer.enqueue("tick", queue="parked", job_id=f"parked-{n}")  # no worker reads it
    command = (
        f"{STEADFETCH} top --redis-url {aof_redis.url} --refresh 0.2; "
        'echo "top exited $?"; stty -a; sleep 600'
    )
    tmux("new-session", "-d", "-x", "100", "-y", "40", "-s", "top", "-c", str(REPO),
         "-e", f"PYTHONPATH={REPO}", "sh", "-c", command)  # fmt: skip

    screen = wait_for_screen(
        tmux, lambda s: "connected" in worker_row(s) and "STALE" not in worker_row(s), "worker"
    )
    assert "steadfetch top" in screen
    assert "0/4" in worker_row(screen)  # in flight / concurrency of the real worker
    assert next(line for line in screen.splitlines() if line.startswith("parked")).split()[1] == "7"

    aof_redis.stop()
    screen = wait_for_screen(
        tmux, lambda s: "● reconnecting" in s and "ConnectionRefusedError" in s, "outage panel"
    )
    assert "down for" in screen and "next retry in" in screen
    attempt = int(screen.split("attempt ", 1)[1].split()[0])
    assert attempt >= 2  # the first failed attempt saw the server close the connection
    assert WORKER_ID in screen  # the last data read stays on screen
    assert worker.poll() is None  # the worker rides the outage out too

    aof_redis.start()
    restarted = time.time()
    screen = wait_for_screen(tmux, beat_after(restarted), "heartbeat written after the restart")
    assert "● reconnecting" not in screen
    assert next(line for line in screen.splitlines() if line.startswith("parked")).split()[1] == "7"

    tmux("send-keys", "-t", "top", "q")
    screen = wait_for_screen(tmux, lambda s: "top exited" in s, "exit line", within=10)
    assert "top exited 0" in screen
    assert " icanon" in screen and " echo" in screen  # the terminal was restored
    assert worker.poll() is None
