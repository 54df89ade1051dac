"""The connection owner on a real Redis Cluster: redis+cluster:// URLs, MOVED followed by the
client, the outage classification for a cluster that cannot serve a slot."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.cluster import RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster
from steadfetch.fetcher import ConnectionState, RedisConnection
from steadfetch.fetcher.errors import ConfigurationError, RedisUnavailable
from steadfetch.worker.redis_server import free_port
from tests.fetcher.conftest import FAST_RETRY


async def test_commands_reach_the_primary_of_each_key_through_one_startup_node(
    cluster: LocalCluster, oracle: RedisCluster
) -> None:
    # One startup node: the client learns the slot map and follows MOVED to the others.
    conn = RedisConnection.from_url(
        f"redis+cluster://127.0.0.1:{cluster.nodes[-1].port}/", retry=FAST_RETRY
    )
    try:
        for i in range(20):
            await conn.execute("writing", lambda r, i=i: r.set(f"k{i}", i))
        assert [int(oracle.get(f"k{i}")) for i in range(20)] == list(range(20))
        assert conn.state is ConnectionState.CONNECTED
        assert conn.failovers == 0
        assert conn.primary is not None and len(conn.primary.split(",")) == 3
    finally:
        await conn.close()


async def test_a_plain_url_on_a_cluster_node_says_to_use_a_cluster_url(
    cluster: LocalCluster,
) -> None:
    plain = RedisConnection.from_url(f"redis://127.0.0.1:{cluster.nodes[0].port}/0")
    try:
        with pytest.raises(ConfigurationError, match="redis\\+cluster://") as info:
            for i in range(20):  # some key lives on another primary: MOVED
                await plain.execute("writing", lambda r, i=i: r.set(f"k{i}", i))
        assert "MOVED" in str(info.value)
    finally:
        await plain.close()


async def test_a_cross_slot_call_is_a_configuration_error_naming_the_bug(
    conn: RedisConnection,
) -> None:
    with pytest.raises(ConfigurationError, match="several cluster slots"):
        await conn.execute("reading two slots", lambda r: r.eval("return 1", 2, "{a}x", "{b}y"))


async def test_no_reachable_node_is_an_outage_that_gives_up_at_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fetcher")
    port = free_port()
    conn = RedisConnection.from_url(f"redis+cluster://127.0.0.1:{port}/", retry=FAST_RETRY)
    try:
        with pytest.raises(RedisUnavailable, match=f"Redis cluster 127.0.0.1:{port} unreachable"):
            await conn.execute("pinging", lambda r: r.set("k", 1), deadline=0.5)
    finally:
        await conn.close()


async def test_a_killed_primary_is_replaced_by_its_replica_and_the_move_said_in_one_line(
    cluster: LocalCluster, conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fetcher")
    await conn.execute("writing", lambda r: r.set("k", "before"))
    victim = cluster.primary_of("k")
    cluster.wait_replicated(victim)  # its replica has it: the kill loses no write
    victim.kill()
    try:
        async with asyncio.timeout(30):
            await conn.execute("writing after the kill", lambda r: r.set("k2", "after"))
            assert await conn.execute("reading", lambda r: r.get("k")) == b"before"
        assert conn.failovers == 1
        moved = [r.getMessage() for r in caplog.records if "primary moved from" in r.getMessage()]
        assert len(moved) == 1 and f"primary moved from 127.0.0.1:{victim.port} to " in moved[0]
        assert f"127.0.0.1:{victim.port}" not in (conn.primary or "")
    finally:
        victim.start()  # rejoins as a replica of the new primary: the session cluster is whole
        cluster.wait_ok()


async def test_a_connection_the_cluster_client_closed_mid_call_is_an_outage_not_a_crash(
    cluster: LocalCluster,
) -> None:
    """A RedisCluster that meets a connection error closes every node's connections, also those
    other tasks are using; their next write fails inside redis-py with ``AttributeError:
    'NoneType' object has no attribute 'writelines'`` (cluster-kill-primary-durable: the worker
    exited 1). Provoked here with redis-py's own write on a connection it has closed."""
    conn = RedisConnection.from_url(cluster.url, retry=FAST_RETRY)
    broken: list[str] = []

    async def write(r: RedisCluster) -> object:
        if not broken:
            node = r.get_node_from_key("{k}")
            connection = node.acquire_connection()
            try:
                await connection.disconnect()
                await connection._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
            except AttributeError as exc:
                broken.append(str(exc))
                raise
            finally:
                node.release(connection)
        return await r.set("{k}", 1)

    try:
        await conn.execute("warming up", lambda r: r.set("{k}", 0))  # the slot map read
        assert await conn.execute("writing", write) is True  # type: ignore[arg-type]
        assert "'NoneType' object has no attribute" in broken[0]
        assert conn.stats.attempts == 1 and conn.state is ConnectionState.CONNECTED
    finally:
        await conn.close()
