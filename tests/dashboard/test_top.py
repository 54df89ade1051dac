"""``top`` against a real redis-server, in-process: one-shot mode, the live loop across a
restart, and configuration errors. (The terminal itself is driven in test_top_tmux.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from rich.console import Console

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Admin, Fetcher, Keys, Producer, RedisConnection
from steadfetch.worker.dashboard import run_top_async
from steadfetch.worker.dashboard.source import FetcherSource
from steadfetch.worker.dashboard.top import Top
from steadfetch.worker.redis_server import free_port
from tests.dashboard import samples
from tests.dashboard.terminal import retry_attempt
from tests.polling import wait_until

pytestmark = pytest.mark.timeout(60)


def plain(width: int = 100) -> Console:
    return Console(record=True, width=width, force_terminal=False, color_system=None)


def screen(top: Top) -> str:
    """What the drawer would put on screen now."""
    console = plain()
    console.print(top.frame())
    return console.export_text()


async def seed(url: str, worker_id: str = "it-worker-1") -> None:
    """A registered worker with a fresh heartbeat, and three waiting jobs."""
    conn = RedisConnection.from_url(url)
    try:
        fetcher = Fetcher(conn, worker_id, ["default"])
        await fetcher.register()
        beat = samples.heartbeat(worker_id=worker_id, heartbeat_at=time.time())
        await fetcher.heartbeat(beat, ttl=60)
        producer = Producer(conn)
        for _ in range(3):
            await producer.enqueue("noop", queue="default")
    finally:
        await conn.close()


async def test_once_without_terminal_prints_one_frame(redis_server: RedisServer) -> None:
    await seed(redis_server.url)
    console = plain()
    code = await run_top_async(redis_server.url, console=console)
    out = console.export_text()
    assert code == 0
    row = next(line for line in out.splitlines() if "it-worker-1" in line)
    assert "153.4/s" in row and "12/20" in row and "STALE" not in row
    assert next(line for line in out.splitlines() if line.startswith("default")).split()[1] == "3"
    assert "1 workers" in out


async def test_once_without_redis_says_reconnecting_and_fails() -> None:
    console = plain()
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    code = await run_top_async(url, console=console, once_timeout=1.0)
    out = console.export_text()
    assert code == 1
    assert time.monotonic() - started < 5
    assert "● reconnecting to 127.0.0.1" in out
    assert "ConnectionRefusedError" in out
    assert "no data read from Redis yet" in out


async def test_bad_url_is_a_configuration_error() -> None:
    console = plain()
    assert await run_top_async("http://nowhere", console=console) == 2
    assert "steadfetch top:" in console.export_text()


async def test_wrong_password_is_a_configuration_error() -> None:
    with RedisServer(password="s3cret") as server:
        console = plain()
        url = f"redis://:pw-xyzzy@{server.host}:{server.port}/0"
        assert await run_top_async(url, console=console, once_timeout=5.0) == 2
        out = console.export_text()
        assert "steadfetch top:" in out and "pw-xyzzy" not in out  # never the password


async def test_live_loop_survives_a_redis_restart(redis_server: RedisServer) -> None:
    await seed(redis_server.url)
    source = FetcherSource.from_url(redis_server.url)
    terminal = Console(record=True, width=100, height=40, force_terminal=True)
    top = Top(source, terminal, refresh=0.1)
    quit_event = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(top.run(quit_event))
            await wait_until(
                lambda: "it-worker-1" in screen(top), 15.0, "the worker row", interval=0.05
            )
            assert "Redis: outage" not in screen(top)

            await asyncio.to_thread(redis_server.stop)
            await wait_until(
                lambda: "● reconnecting" in screen(top), 15.0, "the outage panel", interval=0.05
            )
            await wait_until(
                lambda: (retry_attempt(screen(top)) or 0) >= 2, 15.0, "retry figures", interval=0.05
            )
            during = screen(top)
            assert "showing data read" in during and "it-worker-1" in during  # last data kept

            await asyncio.to_thread(redis_server.start)
            await wait_until(
                lambda: "Redis: recovering" in screen(top), 20, "the recovery", interval=0.05
            )
            assert "reconnecting" not in screen(top).split("Recent errors")[0]
            quit_event.set()
        assert running.result() == 0
    finally:
        await source.aclose()


#: Registry entries of workers long gone (issue: ``top`` printed "no data read").
GHOSTS = 200_000
SOW_GHOSTS = """
for i = 1, tonumber(ARGV[1]) do redis.call('SADD', KEYS[1], 'ghost-worker-' .. i) end
return redis.call('SCARD', KEYS[1])
"""


async def test_top_with_200k_ghost_registrations_shows_the_live_and_counts_the_stale(
    redis_server: RedisServer,
) -> None:
    """200,000 registered ids without a heartbeat, and Redis closing any client whose pending
    replies exceed 512 kB (one SMEMBERS of the registry is about 4 MB): ``top`` reads the
    registry in pages, shows the two live workers and says how many are stale."""
    await seed(redis_server.url, "live-worker-1")
    await seed(redis_server.url, "live-worker-2")
    conn = RedisConnection.from_url(redis_server.url)
    try:
        await conn.execute("sowing ghosts", lambda r: r.eval(SOW_GHOSTS, 1, Keys().workers, GHOSTS))
        await conn.execute(
            "limiting replies",
            lambda r: r.config_set("client-output-buffer-limit", "normal 512kb 512kb 0"),
        )
        assert len(await Fetcher(conn, "live-worker-1", ["default"]).fetch(1)) == 1
        console = plain()
        code = await run_top_async(redis_server.url, console=console, once_timeout=30.0)
        out = console.export_text()
        assert code == 0, out
        assert "no data read" not in out
        assert "live-worker-1" in out and "live-worker-2" in out and "ghost-worker" not in out
        assert "200,000 stale registrations" in out and "2 workers" in out
        # At most so many live workers are listed; the rest are counted.
        summary = await Admin(conn).summary(limit=1)
        assert [w["worker_id"] for w in summary["workers"]] == ["live-worker-1"]
        assert (summary["more_workers"], summary["stale_workers"]) == (1, GHOSTS)
        assert summary["in_processing"] == 1 and summary["queues"] == {"default": 5}
    finally:
        await conn.close()
