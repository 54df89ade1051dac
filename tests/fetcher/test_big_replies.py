"""Replies too large to receive (issue 9 §3), with the real ``client-output-buffer-limit``.

Observed: with ``normal 256kb 0 0`` and 40 KB jobs, every fetch attempt moved another batch into
the processing list and lost its reply, until one worker held the whole queue and did no work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Fetcher, Keys, RedisConnection
from steadfetch.fetcher.adoption import LOST_LIMIT, MIN_FETCH_BYTES
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.fixtures import require
from tests.polling import wait_until

KEYS = Keys()
QUEUE = KEYS.queue_key("default")
PROCESSING = KEYS.processing("w1", QUEUE)
LIMIT = 256 * 1024


@pytest.fixture
def small_buffers() -> Iterator[RedisServer]:
    server = require(
        lambda: RedisServer(extra_args=["--client-output-buffer-limit", "normal 256kb 0 0"]).start()
    )
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def oracle(small_buffers: RedisServer) -> Iterator[redis.Redis]:
    client = oracle_for(small_buffers.url)
    yield client  # pytest resumes a yield fixture whatever the outcome: close runs
    client.close()


@pytest.fixture
async def conn(small_buffers: RedisServer) -> AsyncIterator[RedisConnection]:
    connection = RedisConnection.from_url(small_buffers.url, retry=FAST_RETRY)
    yield connection
    await connection.close()


def dead_summary(oracle: redis.Redis) -> list[tuple[str, str]]:
    """(reason, sha1 of raw) of each dead-letter entry: the oracle is a client of this server
    too, and an entry holding a payload too big to send would cut its own connection."""
    script = (
        "local out = {} for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do "
        "local b = cjson.decode(e) out[#out + 1] = {b.reason, redis.sha1hex(b.raw)} end return out"
    )
    return [(r.decode(), h.decode()) for r, h in oracle.eval(script, 1, KEYS.dead)]


def job(i: int, size: int) -> bytes:
    return json.dumps({"id": f"j{i}", "task": "t", "args": ["x" * size]}).encode()


async def test_40kb_jobs_are_fetched_in_batches_that_fit_and_nothing_piles_up(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.rpush(QUEUE, *(job(i, 40_000) for i in range(120)))
    fetcher = Fetcher(conn, "w1", ["default"], block_timeout=0.1)
    done: list[str] = []
    for _ in range(200):
        jobs = await fetcher.fetch(50)
        # Never more than one batch beyond what was handed out: nothing moved and lost.
        assert oracle.llen(PROCESSING) == len(jobs), (len(jobs), oracle.llen(PROCESSING))
        done += [j.id for j in jobs]
        await fetcher.ack_many(jobs)
        if len(done) == 120:
            break
    assert sorted(done) == sorted(f"j{i}" for i in range(120))
    assert oracle.llen(QUEUE) == oracle.llen(PROCESSING) == oracle.llen(KEYS.dead) == 0
    assert fetcher.fetch_bytes <= LIMIT


async def test_adoption_after_a_restart_reads_a_big_processing_list_in_slices(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Observed: adopting its own processing list read it whole and failed the same way."""
    oracle.rpush(PROCESSING, *(job(i, 40_000) for i in range(60)))  # an earlier run's orphans
    fetcher = Fetcher(conn, "w1", ["default"], block_timeout=0.1)
    done: list[str] = []
    while len(done) < 60:
        jobs = await fetcher.fetch(50)
        assert jobs
        done += [j.id for j in jobs]
        await fetcher.ack_many(jobs)
    assert len(set(done)) == 60 and oracle.llen(PROCESSING) == 0


async def test_payloads_over_the_limit_never_leave_redis(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    big = job(0, 600_000)  # over max_payload_bytes, and over what this server would send
    oracle.rpush(QUEUE, big, job(1, 10))
    fetcher = Fetcher(conn, "w1", ["default"], max_payload_bytes=500_000)
    assert [j.id for j in await fetcher.fetch(10)] == ["j1"]
    ((reason, sha),) = dead_summary(oracle)
    assert "exceeds the limit of 500000" in reason and sha == hashlib.sha1(big).hexdigest()
    assert conn.stats.outages == 0  # no reply was ever too large


async def test_a_payload_this_connection_can_never_receive_is_dead_lettered_server_side(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """300 KB is under max_payload_bytes but over the server's 256 KB: it is taken (at least
    one job per fetch), its reply is lost every time; after LOST_LIMIT lost replies at the
    smallest budget it goes to the dead-letter list without ever being sent."""
    huge = job(0, 300_000)
    oracle.rpush(QUEUE, huge, job(1, 10))
    fetcher = Fetcher(conn, "w1", ["default"], block_timeout=0.1)
    ids: list[str] = []
    for _ in range(40):
        jobs = await fetcher.fetch(10)
        ids += [j.id for j in jobs]
        await fetcher.ack_many(jobs)
        if ids == ["j1"]:
            break
    assert ids == ["j1"]
    ((reason, sha),) = dead_summary(oracle)
    assert sha == hashlib.sha1(huge).hexdigest() and "could not be received" in reason
    assert int(reason.split(" replies in a row")[0].rsplit(" ", 1)[1]) >= LOST_LIMIT
    assert fetcher.fetch_bytes == MIN_FETCH_BYTES
    assert oracle.llen(PROCESSING) == oracle.llen(QUEUE) == 0


async def test_a_worker_that_cannot_receive_what_it_holds_says_so_and_gives_it_back(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """While it runs a job, the unreceivable payload cannot be dead-lettered as such (its own
    jobs must not be confused with it): after a bound the worker gives it back and says so;
    once idle, the payload is dead-lettered server-side."""
    oracle.rpush(QUEUE, job(1, 10))
    fetcher = Fetcher(conn, "w1", ["default"], block_timeout=0.1)
    [running] = await fetcher.fetch(1)
    oracle.rpush(QUEUE, job(0, 300_000))
    async with asyncio.TaskGroup() as tg:
        fetching = tg.create_task(fetcher.fetch(10))
        await wait_until(lambda: "gave 1 job(s) back to" in caplog.text, within=20)
        assert oracle.llen(KEYS.dead) == 0
        await fetcher.ack(running)
    assert fetching.result() == []
    ((reason, _),) = dead_summary(oracle)
    assert "could not be received" in reason
    assert oracle.llen(PROCESSING) == oracle.llen(QUEUE) == 0


@pytest.mark.parametrize("mode", ["reliable", "fast"])
async def test_oversized_payloads_between_others_keep_the_others_in_order(
    conn: RedisConnection, oracle: redis.Redis, mode: str
) -> None:
    big = job(99, 2_000)
    oracle.rpush(QUEUE, job(1, 10), big, job(2, 10), job(3, 10), big, job(4, 10))
    fetcher = Fetcher(conn, "w1", ["default"], mode=mode, max_payload_bytes=1_000)  # type: ignore[arg-type]
    assert [j.id for j in await fetcher.fetch(3)] == ["j1", "j2", "j3"]
    assert [j.id for j in await fetcher.fetch(3)] == ["j4"]
    assert len(dead_summary(oracle)) == 2
    expected = [job(i, 10) for i in range(1, 5)] if mode == "reliable" else []
    assert oracle.lrange(PROCESSING, 0, -1) == expected
