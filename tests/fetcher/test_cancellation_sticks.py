"""A task cancelled inside RedisConnection.execute stops with CancelledError, every time.

redis-py 8.1 on Python 3.11 swallows the CancelledError when the cancel lands right after a
command's write finished (``asyncio.wait_for`` in ``send_packed_command``, CPython gh-86296):
without the guard in ``execute``, about two of three tasks looping on ``GET`` and cancelled at
a random moment kept running. These tests cancel at random moments, many times, against a real
redis-server, and check that nothing is left half-read for the next caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Fetcher, Keys, Producer, RedisConnection
from steadfetch.fetcher.cancellation import CancelGuard, cancel_requests
from tests.fetcher.conftest import FAST_RETRY

TRIALS = 100
#: How long a cancelled task may take to finish: generous, it is a bound, not a speed claim.
STOP_WITHIN = 5.0


async def _cancel_at_random(
    task: asyncio.Task[object], rng: random.Random, steps: int = 300
) -> None:
    """Let ``task`` run for a random number of loop steps (below ``steps``), then cancel it."""
    for _ in range(rng.randrange(steps)):
        await asyncio.sleep(0)
    task.cancel()


async def _stops(task: asyncio.Task[object]) -> bool:
    """True when ``task`` ends cancelled within STOP_WITHIN (one cancel only, never re-sent)."""
    done, _ = await asyncio.wait({task}, timeout=STOP_WITHIN)
    if not done:
        while not task.done():  # clean up the catatonic task so the test can report it
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        return False
    return task.cancelled()


async def test_a_cancel_always_stops_a_loop_of_redis_calls(conn: RedisConnection) -> None:
    async def loop() -> None:
        while True:
            await conn.execute("reading x", lambda r: r.get("x"))

    rng = random.Random(2624)
    stuck = 0
    for _ in range(TRIALS):
        task: asyncio.Task[object] = asyncio.create_task(loop())
        await _cancel_at_random(task, rng)
        stuck += not await _stops(task)
    assert stuck == 0, f"{stuck} of {TRIALS} cancelled tasks kept running"


async def test_no_crossed_replies_after_cancels(conn: RedisConnection, oracle: redis.Redis) -> None:
    keys = [f"k{i}" for i in range(8)]
    for key in keys:
        oracle.set(key, f"value of {key}")

    async def loop(key: str) -> None:
        while True:
            value = await conn.execute(f"reading {key}", lambda r: r.get(key))
            assert value == f"value of {key}".encode()

    rng = random.Random(2665)
    for trial in range(TRIALS):
        key = keys[trial % len(keys)]
        task: asyncio.Task[object] = asyncio.create_task(loop(key))
        await _cancel_at_random(task, rng)
        assert await _stops(task), f"trial {trial}: the cancelled task kept running"
        # The next call on the same owner gets its own reply, not the cancelled call's.
        other = keys[(trial + 1) % len(keys)]
        assert await conn.execute("checking", lambda r, k=other: r.get(k)) == (
            f"value of {other}".encode()
        )


async def test_cleanup_after_a_handled_cancel_still_talks_to_redis(
    conn: RedisConnection,
) -> None:
    """The guard counts cancels since the call began, not since the task began."""
    after: list[object] = []

    async def handles_its_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # Cleanup after a shutdown signal: the task stays "cancelling" (count 1).
            await conn.execute("writing", lambda r: r.set("cleanup", "done"))
            after.append(await conn.execute("reading", lambda r: r.get("cleanup")))
            raise

    task = asyncio.create_task(handles_its_cancel())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert after == [b"done"]


async def test_the_guard_sees_a_swallowed_cancel() -> None:
    seen: list[bool] = []

    async def swallows() -> None:
        guard = CancelGuard()
        with contextlib.suppress(asyncio.CancelledError):  # what 3.11's wait_for can do
            await asyncio.Event().wait()
        seen.append(guard.cancelled)
        seen.append(cancel_requests() == 1)

    task = asyncio.create_task(swallows())
    await asyncio.sleep(0)
    task.cancel()
    await task
    assert seen == [True, True]


async def test_a_cancel_always_stops_a_blocked_fetch(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY)
    fetcher = Fetcher(conn, "w1", ["high", "default"], block_timeout=0.05)

    async def fetch_forever() -> None:
        while True:  # empty queues: each fetch blocks, times out server-side, returns []
            await fetcher.fetch(5)

    rng = random.Random(42)
    try:
        for trial in range(TRIALS):
            task: asyncio.Task[object] = asyncio.create_task(fetch_forever())
            # Early steps: the cancel lands around the blocking command's write, where
            # redis-py loses it; later ones land in the server-side wait.
            await _cancel_at_random(task, rng, steps=40)
            assert await _stops(task), f"trial {trial}: the cancelled fetch kept running"
        # Nothing was lost or left half-read: the next fetch gets the next job.
        await Producer(conn).enqueue("t", queue="default", job_id="after-cancels")
        assert [j.id for j in await fetcher.fetch(5)] == ["after-cancels"]
        assert oracle.llen(Keys().queue_key("default")) == 0
    finally:
        await conn.close()


async def test_a_cancel_interrupts_a_long_block_at_once(redis_server: RedisServer) -> None:
    """The test above blocks 0.05 s, so a cancel that the blocking call lost would only show as
    a late return. Here the block is 30 s, far over STOP_WITHIN: a lost cancel is a task that did
    not stop. Each trial starts on a fresh connection, so the cancel also lands in the handshake
    that precedes the first blocking command (observed: about one trial in six kept blocking)."""
    rng = random.Random(7)
    stuck = 0
    for trial in range(TRIALS // 2):
        conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY)
        fetcher = Fetcher(conn, f"w{trial}", ["default"], block_timeout=30)
        try:
            task: asyncio.Task[object] = asyncio.create_task(fetcher.fetch(5))
            await _cancel_at_random(task, rng, steps=60)
            stuck += not await _stops(task)
        finally:
            await conn.close()
    assert stuck == 0, f"{stuck} of {TRIALS // 2} cancelled fetches kept blocking"
