"""Durability on demand against a real primary and replica: WAIT after enqueue and settle."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import (
    ConfigurationError,
    Fetcher,
    Keys,
    Producer,
    RedisConnection,
    RedisUnavailable,
    RetryPolicy,
)
from steadfetch.fetcher.durability import Durability, parse_durability
from steadfetch.fetcher.failures import Failure, classify
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.fixtures import require
from tests.polling import wait_until

KEYS = Keys()
QUEUE = KEYS.queue_key("default")
ONE_REPLICA = Durability(replicas=1, timeout=0.2)
# A loaded machine can take longer than 200 ms to replicate one write: where the test counts
# WAITs (and a timed-out WAIT would be retried and counted again), the replica gets 10 s.
PATIENT = Durability(replicas=1, timeout=10.0)


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = require(lambda: RedisServer().start())
    replica = RedisServer().start()
    try:
        oracle_for(replica.url).replicaof("127.0.0.1", primary.port)
        watcher = oracle_for(primary.url)
        deadline = 20.0
        # WAIT counts a replica once it is online (its full sync done), not when it connects.
        while watcher.info("replication").get("slave0", {}).get("state") != "online":
            deadline -= 0.05
            assert deadline > 0, "the replica did not connect in 20 s"
            asyncio.run(asyncio.sleep(0.05))
        yield primary, replica
    finally:
        replica.close()
        primary.close()


def _waits(server: RedisServer) -> int:
    stats = oracle_for(server.url).info("commandstats").get("cmdstat_wait", {})
    return int(stats.get("calls", 0))


def test_the_option_text_reads_and_refuses_what_it_cannot() -> None:
    assert parse_durability("replicas=1,timeout=500ms") == Durability(replicas=1, timeout=0.5)
    assert parse_durability("aof") == Durability(aof=True, timeout=1.0)
    assert parse_durability("aof,replicas=2,timeout=2s") == Durability(2, True, 2.0)
    assert str(Durability(replicas=1, timeout=0.5)) == "replicas=1,timeout=500ms"
    for bad in ("replicas=x", "timeout=5m", "replicas=0", "", "fsync", "timeout=0"):
        with pytest.raises(ValueError, match=r"durability|replicas|timeout"):
            parse_durability(bad)


async def test_enqueue_and_every_settle_wait_for_the_replica(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, _ = primary_and_replica
    conn = RedisConnection.from_url(primary.url, retry=FAST_RETRY, durability=PATIENT)
    try:
        producer = Producer(conn)
        await producer.enqueue("t", job_id="a")
        await producer.enqueue("t", job_id="b", max_attempts=1)
        assert _waits(primary) == 2
        fetcher = Fetcher(conn, "w1", ["default"])
        a, b = await fetcher.fetch(2)
        assert _waits(primary) == 2  # a fetch is no write that needs confirming
        await fetcher.ack(a)
        assert await fetcher.nack(b, "boom") == "dead"
        assert _waits(primary) == 4
    finally:
        await conn.close()


async def test_an_unconfirmed_enqueue_is_retried_until_the_replica_is_back(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = primary_and_replica
    direct = oracle_for(primary.url)
    conn = RedisConnection.from_url(primary.url, retry=FAST_RETRY, durability=ONE_REPLICA)
    try:
        producer = Producer(conn)  # durability implies a reservation: the retries rewrite nothing
        replica.pause()
        try:
            async with asyncio.TaskGroup() as tg:
                enqueue = tg.create_task(producer.enqueue("t", job_id="held"))
                await wait_until(lambda: conn.stats.attempts >= 2, what="unconfirmed attempts")
                assert not enqueue.done()
                assert "NOTCONFIRMED" in (conn.stats.last_error or "")
                replica.resume()
        finally:
            replica.resume()
        assert not enqueue.result().duplicate
        assert [json.loads(raw)["id"] for raw in direct.lrange(QUEUE, 0, -1)] == ["held"]
    finally:
        await conn.close()


async def test_a_producer_deadline_ends_an_unconfirmed_enqueue_with_a_descriptive_error(
    redis_server: RedisServer,
) -> None:
    """No replica at all: WAIT 1 returns 0; a one-shot producer gives up naming the cause."""
    conn = RedisConnection.from_url(
        redis_server.url, retry=RetryPolicy(base=0.02, cap=0.1, deadline=1.0),
        durability=ONE_REPLICA,
    )  # fmt: skip
    try:
        with pytest.raises(RedisUnavailable, match=r"NOTCONFIRMED .*0 of 1 replica\(s\)"):
            await Producer(conn).enqueue("t")
    finally:
        await conn.close()
    # The write was performed (at-least-once): the error says it was not *confirmed*.
    assert oracle_for(redis_server.url).llen(QUEUE) >= 1


async def test_waitaof_on_a_server_without_it_is_a_configuration_error(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    version = tuple(int(x) for x in oracle.info("server")["redis_version"].split(".")[:2])
    conn = RedisConnection.from_url(
        redis_server.url, retry=FAST_RETRY, durability=Durability(aof=True, timeout=0.2)
    )
    try:
        if version >= (7, 2):  # appendonly is off in the test server: also refused at once
            with pytest.raises(ConfigurationError, match=r"appendonly|WAITAOF"):
                await Producer(conn).enqueue("t")
        else:
            with pytest.raises(ConfigurationError, match=r"(?i)unknown command.*waitaof"):
                await Producer(conn).enqueue("t")
    finally:
        await conn.close()


def test_notconfirmed_is_an_outage_in_the_one_table() -> None:
    from steadfetch.fetcher.durability import DurabilityNotConfirmedError

    assert classify(DurabilityNotConfirmedError("NOTCONFIRMED the write ...")) is Failure.OUTAGE
