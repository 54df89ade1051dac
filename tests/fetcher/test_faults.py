"""Network faults through a real Toxiproxy: lost replies, black holes, resets (local and docker).

The fetcher talks through the proxy (``stack.proxied_url``); the oracle reads Redis directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from steadfetch.chaos.env import Stack
from steadfetch.fetcher import (
    Fetcher,
    JobSpec,
    Keys,
    Producer,
    RedisConnection,
    blocking_read_timeout,
)
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.polling import wait_until

KEYS = Keys()
QUEUE = KEYS.queue_key("default")


@pytest.fixture
def direct(stack: Stack) -> Iterator[redis.Redis]:
    client = oracle_for(stack.direct_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def proxied(stack: Stack) -> AsyncIterator[RedisConnection]:
    conn = RedisConnection.from_url(stack.proxied_url, retry=FAST_RETRY, read_timeout=5.0)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_reply_lost_after_the_move_loses_no_job(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection
) -> None:
    fetcher = Fetcher(proxied, "w1", ["default"], block_timeout=0.2)
    assert await fetcher.fetch(3) == []  # warm: start-up adoption done, connection pooled
    ids = await Producer(proxied).enqueue_many([JobSpec("t", (i,)) for i in range(10)])
    processing = KEYS.processing("w1", QUEUE)
    stack.proxy.add_toxic("limit_data", stream="downstream", bytes=1)
    got: list[str] = []
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(fetcher.fetch(3))
        await wait_until(lambda: proxied.stats.attempts >= 2, what="the lost reply and a retry")
        # The script ran, its reply was cut: the head of the queue, in order, sits in the
        # processing list, recoverable (and the retry moved no more).
        moved = [json.loads(raw)["id"] for raw in direct.lrange(processing, 0, -1)]
        assert moved == ids[:3]
        assert direct.llen(processing) + direct.llen(QUEUE) == 10
        stack.proxy.heal()
    batch = first.result()
    while True:
        assert len(batch) <= 3
        got += [j.id for j in batch]
        await fetcher.ack_many(batch)
        if not batch:
            break
        batch = await fetcher.fetch(3)
    assert sorted(got) == sorted(ids)  # every job delivered, none twice
    assert direct.llen(processing) == direct.llen(QUEUE) == 0


async def test_a_black_hole_during_a_blocking_fetch_is_detected_and_survived(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    block = 1.0  # read timeout of the blocking call: 1 s + 1 s margin, not the 5 s default
    fetcher = Fetcher(proxied, "w1", ["high", "default"], block_timeout=block)

    async def fetch_until_a_job() -> list[str]:
        while True:
            jobs = await fetcher.fetch(5)
            if jobs:
                return [j.id for j in jobs]

    async with asyncio.TaskGroup() as tg:
        fetching = tg.create_task(fetch_until_a_job())
        await wait_until(
            lambda: any(c.get("cmd") == "blpop" for c in direct.client_list()), what="BLPOP"
        )
        stack.proxy.add_toxic("timeout", stream="downstream", timeout=0)
        cut = time.monotonic()
        await wait_until(
            lambda: proxied.stats.attempts >= 1,
            within=blocking_read_timeout(block) + 5.0,
            what="the half-open connection to be detected",
        )
        detected = time.monotonic() - cut
        stack.proxy.heal()
        direct.rpush(QUEUE, json.dumps({"id": "after-heal", "task": "t"}))
        direct.rpush(KEYS.wake(QUEUE), "1")
    assert fetching.result() == ["after-heal"]
    print(f"half-open connection detected after {detected:.2f} s (block {block} s)")
    assert detected < blocking_read_timeout(block) + 2.0
    lines = [r.getMessage() for r in caplog.records if "unreachable while" in r.getMessage()]
    assert "while fetching from queues [high, default]: TimeoutError" in lines[0]
    assert any("reachable again after" in r.getMessage() for r in caplog.records)


async def test_a_connection_reset_is_logged_with_its_errno_and_survived(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    fetcher = Fetcher(proxied, "w1", ["high", "default"], block_timeout=0.5)
    await proxied.check()
    stack.proxy.add_toxic("reset_peer", stream="upstream", timeout=0)
    async with asyncio.TaskGroup() as tg:
        fetching = tg.create_task(fetcher.fetch(5))
        await wait_until(lambda: proxied.stats.attempts >= 2, what="resets")
        stack.proxy.heal()
        direct.rpush(QUEUE, json.dumps({"id": "j1", "task": "t"}))
    jobs = fetching.result() or await fetcher.fetch(5)
    assert [j.id for j in jobs] == ["j1"]
    lines = [r.getMessage() for r in caplog.records if "unreachable while" in r.getMessage()]
    # Docker's port mapping (a userland proxy) turns the peer's RST into an orderly close.
    cause = {
        "local": "ConnectionResetError [Errno 104] Connection reset by peer",
        "docker": "ConnectionError Connection closed by server.",
    }[stack.env]
    assert any(
        f"while fetching from queues [high, default]: {cause} (attempt " in line for line in lines
    ), lines


async def test_a_cut_link_during_a_blocking_fetch_is_retried_until_restored(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    fetcher = Fetcher(proxied, "w1", ["default"], block_timeout=5.0)
    async with asyncio.TaskGroup() as tg:
        fetching = tg.create_task(fetcher.fetch(5))
        await wait_until(
            lambda: any(c.get("cmd") == "blmove" for c in direct.client_list()), what="BLMOVE"
        )
        stack.proxy.disable()
        await wait_until(lambda: proxied.stats.attempts >= 3, what="failed reconnects")
        assert direct.llen(QUEUE) == 0
        direct.rpush(QUEUE, json.dumps({"id": "during-cut", "task": "t"}))
        stack.proxy.enable()
    jobs = fetching.result() or await fetcher.fetch(5)
    assert [j.id for j in jobs] == ["during-cut"]
    lines = [r.getMessage() for r in caplog.records if "unreachable while" in r.getMessage()]
    assert all("while fetching from queues [default]: " in line for line in lines)
    assert any("reachable again after" in r.getMessage() for r in caplog.records)


async def _enqueue_losing_the_first_reply(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection, producer: Producer
) -> str:
    """One enqueue whose first reply is lost after the write ran (limit_data downstream)."""
    await producer.enqueue("t", queue="warm-up")  # loads the enqueue script before the toxic
    stack.proxy.add_toxic("limit_data", stream="downstream", bytes=1)
    async with asyncio.TaskGroup() as tg:
        enqueue = tg.create_task(producer.enqueue("t", queue="default"))
        await wait_until(lambda: direct.llen(QUEUE) >= 1, what="the script to run")
        await wait_until(lambda: proxied.stats.attempts >= 2, what="the lost reply and a retry")
        stack.proxy.heal()
    job_id = enqueue.result()
    assert not job_id.duplicate  # the call's own retry is no duplicate
    return job_id


async def test_a_retried_enqueue_whose_reply_was_lost_pushes_twice_without_a_reservation(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection
) -> None:
    """Pins the hazard that ``unique_for`` removes: at-least-once without a reservation."""
    job_id = await _enqueue_losing_the_first_reply(stack, direct, proxied, Producer(proxied))
    ids = [json.loads(raw)["id"] for raw in direct.lrange(QUEUE, 0, -1)]
    assert ids == [job_id] * 2


async def test_a_retried_enqueue_whose_reply_was_lost_writes_once_with_a_reservation(
    stack: Stack, direct: redis.Redis, proxied: RedisConnection
) -> None:
    producer = Producer(proxied, unique_for=60)
    job_id = await _enqueue_losing_the_first_reply(stack, direct, proxied, producer)
    ids = [json.loads(raw)["id"] for raw in direct.lrange(QUEUE, 0, -1)]
    assert ids == [job_id]  # written once, by the first attempt; the retry found its own token
    assert (await producer.enqueue("t", job_id=job_id)).duplicate  # another call: a duplicate
    assert direct.llen(QUEUE) == 1
