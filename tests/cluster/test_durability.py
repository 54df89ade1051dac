"""``--durability`` on a real Redis Cluster (three primaries, each with a replica): every durable
write is one script call in one slot, sent with its WAIT in one pipeline to that slot's primary,
so the WAIT counts that write (on another connection it would confirm at once)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.cluster import RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster, cli
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import (
    ConfigurationError,
    Fetcher,
    JobSpec,
    Keys,
    Producer,
    RedisConnection,
    RedisUnavailable,
    RetryPolicy,
)
from steadfetch.fetcher.durability import Durability
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.polling import wait_for, wait_until
from tests.worker.conftest import StartWorker, record_path, start_worker
from tests.worker.harness import read_records
from tests.worker.test_admin_cli import cli as steadfetch

__all__ = ["record_path", "start_worker"]  # the worker fixtures, used by name below

KEYS = Keys(cluster=True)
HIGH, LOW = KEYS.queue_key("high"), KEYS.queue_key("low")
PATIENT = Durability(replicas=1, timeout=10.0)  # a loaded machine may take long to replicate


def replica_of(cluster: LocalCluster, primary: RedisServer) -> RedisServer:
    """The (one) replica that follows ``primary`` now."""
    info = cli(primary.port, "info", "replication")
    ports = {
        int(field.partition("port=")[2].split(",")[0]) for field in info.split() if "port=" in field
    }
    [replica] = [n for n in cluster.nodes if n.port in ports]
    return replica


def waits(node: RedisServer, command: str = "wait") -> int:
    stats = oracle_for(node.url).info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def on_replica(replica: RedisServer, key: str) -> list[bytes]:
    """List ``key`` as ``replica`` has it (READONLY: a replica serves reads)."""
    client = redis.Redis(port=replica.port, single_connection_client=True, socket_timeout=5.0)
    try:
        client.execute_command("READONLY")
        return list(client.lrange(key, 0, -1))
    finally:
        client.close()


def ids(raws: list[bytes]) -> list[str]:
    return [json.loads(raw)["id"] for raw in raws]


def fail_over_to(cluster: LocalCluster, replica: RedisServer) -> None:
    """CLUSTER FAILOVER on ``replica`` until it is a primary. A manual failover that finds no
    votes (primaries vote for one shard once per 2 node timeouts: an election there just
    happened) gives up silently after 5 s; it is asked again then."""
    deadline = time.monotonic() + 60.0
    while cluster.role(replica) != "master":
        assert time.monotonic() < deadline, f"{replica} did not become a primary in 60 s"
        cli(replica.port, "cluster", "failover")
        try:
            wait_for("the failover", lambda: cluster.role(replica) == "master", timeout=7.0)
        except AssertionError:
            continue
    cluster.wait_ok()


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    server.pause()
    try:
        yield
    finally:
        server.resume()


async def test_enqueue_and_every_settle_wait_on_the_primary_of_their_slot(
    cluster: LocalCluster,
) -> None:
    high, low = cluster.primary_of(HIGH), cluster.primary_of(LOW)
    assert high.port != low.port
    before = waits(high), waits(low)
    conn = RedisConnection.from_url(cluster.url, retry=FAST_RETRY, durability=PATIENT)
    try:
        enqueued = await Producer(conn).enqueue_many(
            [JobSpec("t", queue="high", max_attempts=1), JobSpec("t", queue="low")]
        )  # one script call per slot
        assert (waits(high) - before[0], waits(low) - before[1]) == (1, 1)
        # Confirmed means on the replica when enqueue returns, not some time later.
        assert ids(on_replica(replica_of(cluster, high), HIGH)) == [enqueued[0]]
        assert ids(on_replica(replica_of(cluster, low), LOW)) == [enqueued[1]]
        fetcher = Fetcher(conn, "w1", ["high", "low"])
        h, lo = await fetcher.fetch(2)
        assert (waits(high) - before[0], waits(low) - before[1]) == (1, 1)  # no fetch WAIT
        await fetcher.ack(lo)
        assert await fetcher.nack(h, "boom") == "dead"
        assert (waits(high) - before[0], waits(low) - before[1]) == (2, 2)
        assert len(on_replica(replica_of(cluster, high), KEYS.dead_of(HIGH))) == 1
    finally:
        await conn.close()


async def test_an_unconfirmed_write_names_its_node_and_is_retried_until_the_replica_is_back(
    cluster: LocalCluster, oracle: RedisCluster
) -> None:
    """With the replica of the slot's primary stopped, WAIT 1 returns 0 for the write it
    follows (a WAIT on a connection that wrote nothing would return 1 at once)."""
    primary = cluster.primary_of(HIGH)
    one_shot = RedisConnection.from_url(
        cluster.url,
        retry=RetryPolicy(base=0.02, cap=0.1, deadline=1.0),
        durability=Durability(replicas=1, timeout=0.1),
    )
    conn = RedisConnection.from_url(
        cluster.url, retry=FAST_RETRY, durability=Durability(replicas=1, timeout=0.2)
    )
    replica = replica_of(cluster, primary)
    try:
        with paused(replica):
            with pytest.raises(
                RedisUnavailable,
                match=r"NOTCONFIRMED .*\(0 of 1 replica\(s\); --durability replicas=1",
            ):
                await Producer(one_shot).enqueue("t", queue="high", job_id="given-up")
            assert f"127.0.0.1:{primary.port}" in (one_shot.stats.last_error or "")
            async with asyncio.TaskGroup() as tg:
                enqueue = tg.create_task(Producer(conn).enqueue("t", queue="high", job_id="held"))
                await wait_until(lambda: conn.stats.attempts >= 2, what="unconfirmed attempts")
                assert not enqueue.done()
                replica.resume()
        assert not enqueue.result().duplicate
        # Performed but not confirmed (given-up); retried until confirmed: written once (held).
        assert ids(oracle.lrange(HIGH, 0, -1)) == ["given-up", "held"]
    finally:
        await one_shot.close()
        await conn.close()


async def test_a_durable_write_whose_slot_moved_is_retried_on_the_new_primary(
    cluster: LocalCluster, oracle: RedisCluster
) -> None:
    """CLUSTER FAILOVER between two enqueues: the client's slot map is stale, the script gets
    MOVED from the demoted primary; the map is re-read and the write retried where it lives."""
    old = cluster.primary_of(LOW)
    new = replica_of(cluster, old)
    conn = RedisConnection.from_url(cluster.url, retry=FAST_RETRY, durability=PATIENT)
    try:
        producer = Producer(conn)
        await producer.enqueue("t", queue="low", job_id="before")
        fail_over_to(cluster, new)
        try:
            wait_for("the demotion", lambda: cluster.role(old) == "slave")
            before = waits(new)
            await producer.enqueue("t", queue="low", job_id="after")
            assert "moved away from" in (conn.stats.last_error or "")
            assert waits(new) - before == 1
            assert ids(oracle.lrange(LOW, 0, -1)) == ["before", "after"]
        finally:
            fail_over_to(cluster, old)  # give the session cluster its layout back
    finally:
        await conn.close()


async def test_aof_on_a_cluster_names_the_node_and_what_it_lacks(cluster: LocalCluster) -> None:
    conn = RedisConnection.from_url(
        cluster.url, retry=FAST_RETRY, durability=Durability(aof=True, timeout=0.2)
    )
    primary = cluster.primary_of(HIGH)
    try:
        with pytest.raises(
            ConfigurationError,
            match=rf"127\.0\.0\.1:{primary.port}\) refused enqueueing .*needs (WAITAOF|appendonly)",
        ):
            await Producer(conn).enqueue("t", queue="high")
    finally:
        await conn.close()


async def test_a_durable_write_that_is_not_one_script_call_fails_loudly(
    cluster: LocalCluster,
) -> None:
    conn = RedisConnection.from_url(cluster.url, retry=FAST_RETRY, durability=PATIENT)

    async def two_scripts(r: Redis) -> Any:
        await r.eval("return 1", 1, HIGH)
        return await r.eval("return 2", 1, LOW)

    try:
        with pytest.raises(TypeError, match="must be one script call, not set"):
            await conn.execute("setting", lambda r: r.set(HIGH, 1), write=True)
        with pytest.raises(TypeError, match="must be one script call"):
            await conn.execute("two scripts", two_scripts, write=True)
        with pytest.raises(TypeError, match="must name its keys"):
            await conn.execute("keyless", lambda r: r.eval("return 1", 0), write=True)
        assert await conn.execute("not a write", lambda r: r.set(HIGH, 1))  # unaffected
    finally:
        await conn.close()


def test_the_cli_enqueues_and_a_worker_settles_durably_on_a_cluster(
    cluster: LocalCluster, start_worker: StartWorker, record_path: Path
) -> None:
    """The real binaries with ``--durability``: each enqueue and each ack waits on its slot's
    primary (WAIT counted there), and every job runs."""
    high, low = cluster.primary_of(HIGH), cluster.primary_of(LOW)
    before = waits(high), waits(low)
    option = ["--durability", "replicas=1,timeout=10s"]
    for queue in ("high", "low"):
        steadfetch(cluster.url, "enqueue", "work", f"{queue}-job", "--queue", queue, *option)
    assert (waits(high) - before[0], waits(low) - before[1]) == (1, 1)
    worker = start_worker(cluster.url, "--queues", "high,low", "--worker-id", "dw", *option)
    worker.started()
    wait_for(
        "both jobs done",
        lambda: (
            {r["token"] for r in read_records(record_path) if r["event"] == "end"}
            >= {"high-job", "low-job"}
        ),
    )
    assert worker.stop() == 0
    assert waits(high) - before[0] >= 2 and waits(low) - before[1] >= 2  # + the acks
