"""Durability on demand against a real primary and replica: WAIT after enqueue and settle.

``aof`` (WAITAOF) needs Redis >= 7.2; Debian bookworm has 7.0, so those tests run against the
``valkey-server`` (a Redis 7.2-compatible fork) that ``scripts/dev setup`` downloads into bin/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

from steadfetch.chaos.env.binaries import valkey_server_binary
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import (
    Admin,
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
from steadfetch.fetcher.fetch import Mode
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.fixtures import require
from tests.polling import wait_for, wait_until

KEYS = Keys()
QUEUE = KEYS.queue_key("default")
ONE_REPLICA = Durability(replicas=1, timeout=0.2)
# A loaded machine can take longer than 200 ms to replicate one write: where the test counts
# WAITs (and a timed-out WAIT would be retried and counted again), the replica gets 10 s.
PATIENT = Durability(replicas=1, timeout=10.0)


@contextmanager
def replicated(primary: RedisServer, replica: RedisServer) -> Iterator[None]:
    """``replica`` following ``primary`` (both started here, closed after), once it is online."""
    started = [primary]
    try:
        require(primary.start)
        started.append(replica.start())
        # The full sync starts at once, not after the default 5 s wait for more replicas.
        oracle_for(primary.url).config_set("repl-diskless-sync-delay", 0)
        oracle_for(replica.url).replicaof("127.0.0.1", primary.port)
        watcher = oracle_for(primary.url)
        # WAIT counts a replica once it is online (its full sync done), not when it connects.
        wait_for(
            "the replica to be online",
            lambda: watcher.info("replication").get("slave0", {}).get("state") == "online",
            timeout=20.0,
        )
        yield
    finally:
        for server in reversed(started):
            server.close()


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[RedisServer, RedisServer]]:
    primary, replica = RedisServer(), RedisServer()
    with replicated(primary, replica):
        yield primary, replica


@pytest.fixture
def valkey() -> str:
    """The valkey-server binary (WAITAOF); missing: a skip saying why (a failure under CI)."""
    return require(valkey_server_binary)


def _waitaofs(server: RedisServer) -> int:
    stats = oracle_for(server.url).info("commandstats").get("cmdstat_waitaof", {})
    return int(stats.get("calls", 0))


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
    await _enqueue_and_settle(primary, PATIENT, lambda: _waits(primary))


async def _enqueue_and_settle(
    server: RedisServer, durability: Durability, confirmations: Callable[[], int]
) -> None:
    """Two enqueues, a fetch, an ack and a dead-letter: ``confirmations()`` (the server's count
    of WAIT or WAITAOF calls) grows by one per write, and not for the fetch."""
    conn = RedisConnection.from_url(server.url, retry=FAST_RETRY, durability=durability)
    try:
        producer = Producer(conn)
        await producer.enqueue("t", job_id="a")
        await producer.enqueue("t", job_id="b", max_attempts=1)
        assert confirmations() == 2
        fetcher = Fetcher(conn, "w1", ["default"])
        a, b = await fetcher.fetch(2)
        assert confirmations() == 2  # a fetch is no write that needs confirming
        await fetcher.ack(a)
        assert await fetcher.nack(b, "boom") == "dead"
        assert confirmations() == 4
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


async def test_aof_enqueue_and_every_settle_wait_for_the_local_aof(valkey: str) -> None:
    with RedisServer(appendonly=True, binary=valkey) as server:
        await _enqueue_and_settle(
            server, Durability(aof=True, timeout=10.0), lambda: _waitaofs(server)
        )
        assert _waits(server) == 0  # aof alone asks no replica


async def test_aof_with_replicas_waits_for_the_replicas_aof_too(valkey: str) -> None:
    primary = RedisServer(appendonly=True, binary=valkey)
    replica = RedisServer(appendonly=True, binary=valkey)
    with replicated(primary, replica):
        conn = RedisConnection.from_url(
            primary.url, retry=FAST_RETRY, durability=parse_durability("aof,replicas=1,timeout=10s")
        )
        try:
            await Producer(conn).enqueue("t", job_id="both")
            assert _waitaofs(primary) == 1  # confirmed at the first try: counted once
        finally:
            await conn.close()
        assert oracle_for(replica.url).llen(QUEUE) == 1


async def test_aof_with_a_replica_whose_aof_is_off_is_never_confirmed(valkey: str) -> None:
    """WAITAOF 1 1 returns [1, 0] from a replica with appendonly no: retried as unconfirmed
    until the producer's deadline, and the final error says what the replica lacks."""
    primary = RedisServer(appendonly=True, binary=valkey)
    replica = RedisServer(appendonly=False, binary=valkey)
    with replicated(primary, replica):
        await _enqueue_fails(
            primary,
            parse_durability("aof,replicas=1,timeout=100ms"),
            RedisUnavailable,
            r"NOTCONFIRMED .*local AOF 1/1, replica AOFs 0/1; a replica with appendonly no never "
            r"confirms",
        )
        assert _waitaofs(primary) >= 2  # retried, not given up at the first answer


async def test_aof_on_a_primary_with_appendonly_off_is_a_configuration_error(valkey: str) -> None:
    with RedisServer(appendonly=False, binary=valkey) as server:
        await _enqueue_fails(
            server,
            Durability(aof=True, timeout=0.2),
            ConfigurationError,
            r"refused enqueueing .*--durability aof,timeout=200ms needs appendonly yes "
            r".*CONFIG SET appendonly yes.*the server said: .*appendonly is disabled",
        )
        assert _waitaofs(server) == 1  # refused at once, never retried


async def test_aof_on_a_server_without_waitaof_is_a_configuration_error(valkey: str) -> None:
    """A server without WAITAOF (Redis < 7.2; provoked on any version by renaming it away)."""
    disabled = ["--rename-command", "WAITAOF", ""]
    with RedisServer(appendonly=True, binary=valkey, extra_args=disabled) as server:
        await _enqueue_fails(
            server,
            Durability(aof=True, timeout=0.2),
            ConfigurationError,
            r"needs WAITAOF, which this server lacks .*(?i:unknown command)",
        )


async def test_aof_on_this_machines_redis_server_says_what_it_lacks(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    """The system redis-server (Debian bookworm: 7.0, no WAITAOF; 7.2+: its AOF is off)."""
    version = tuple(int(x) for x in oracle.info("server")["redis_version"].split(".")[:2])
    lacks = "needs appendonly yes" if version >= (7, 2) else "needs WAITAOF"
    await _enqueue_fails(redis_server, Durability(aof=True, timeout=0.2), ConfigurationError, lacks)


async def _enqueue_fails(
    server: RedisServer, durability: Durability, error: type[Exception], match: str
) -> None:
    """An enqueue with ``durability`` raises ``error`` matching ``match`` (a one-shot producer:
    an unconfirmed write is retried for 1 s, then RedisUnavailable)."""
    retry = RetryPolicy(base=0.02, cap=0.1, deadline=1.0)
    conn = RedisConnection.from_url(server.url, retry=retry, durability=durability)
    try:
        with pytest.raises(error, match=match):
            await Producer(conn).enqueue("t")
    finally:
        await conn.close()


def test_notconfirmed_is_an_outage_in_the_one_table() -> None:
    from steadfetch.fetcher.durability import DurabilityNotConfirmedError

    assert classify(DurabilityNotConfirmedError("NOTCONFIRMED the write ...")) is Failure.OUTAGE


async def test_a_dead_letter_confirmed_only_on_its_second_attempt_still_frees_the_jobs_id(
    primary_and_replica: tuple[RedisServer, RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The settle script moved the job to the dead list, WAIT timed out (the replica paused),
    and the settle ran again: it found the job gone (0 moved), so the id reservation every
    durable producer takes was not released. The dead job could then not be retried (nor its
    id enqueued again) for the reservation's 7-day hold."""
    primary, replica = primary_and_replica
    [_] = await _dead_letter_while_the_replica_pauses(primary, replica, "reliable")
    assert not [r for r in caplog.records if "was no longer in" in r.getMessage()]
    assert oracle_for(primary.url).exists(KEYS.unique("poison")) == 0  # freed: its window is 0
    conn = RedisConnection.from_url(primary.url, retry=FAST_RETRY, durability=ONE_REPLICA)
    try:
        report = await Admin(conn).dead_letter_retry()
        assert (report.requeued, report.refused) == (1, [])
    finally:
        await conn.close()


async def _dead_letter_while_the_replica_pauses(
    primary: RedisServer, replica: RedisServer, mode: Mode
) -> list[bytes]:
    """One job dead-lettered by a ``mode`` fetcher while WAIT times out at least twice; the dead
    list afterwards."""
    conn = RedisConnection.from_url(primary.url, retry=FAST_RETRY, durability=ONE_REPLICA)
    try:
        await Producer(conn).enqueue("t", job_id="poison", max_attempts=1)
        fetcher = Fetcher(conn, "w1", ["default"], mode=mode)
        [job] = await fetcher.fetch(1)
        before = conn.stats.attempts
        replica.pause()
        try:
            async with asyncio.TaskGroup() as tg:
                nack = tg.create_task(fetcher.nack(job, "boom"))
                await wait_until(
                    lambda: conn.stats.attempts >= before + 2, what="unconfirmed attempts"
                )
                replica.resume()
        finally:
            replica.resume()
        assert nack.result() == "dead"
    finally:
        await conn.close()
    return oracle_for(primary.url).lrange(KEYS.dead, 0, -1)


async def test_a_fast_mode_dead_letter_performed_again_writes_one_entry(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """Fast mode has no processing list to check, so each repeat of an unconfirmed dead-letter
    pushed its entry again (3 entries for one job; retrying them ran it up to three times)."""
    entries = await _dead_letter_while_the_replica_pauses(*primary_and_replica, "fast")
    assert len(entries) == 1, entries
