"""Sentinel for real: resolve the master through a running Sentinel, and survive a failover."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chaos.env.redis_server import RedisServer
from fetcher import ConnectionState, RedisConnection
from tests.fetcher.conftest import FAST_RETRY, SentinelProcess, oracle_for, wait_until


async def test_sentinel_resolves_the_master(
    sentinel_setup: tuple[RedisServer, RedisServer, SentinelProcess],
) -> None:
    master, _, sentinel = sentinel_setup
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0"
    conn = RedisConnection.from_url(url, retry=FAST_RETRY)
    assert conn.endpoint == f"sentinel mymaster@127.0.0.1:{sentinel.port}/0"
    await conn.execute("writing", lambda r: r.set("k", "v"))
    assert oracle_for(master.url).get("k") == b"v"
    await conn.close()


async def test_a_failover_is_retried_until_the_new_master_answers(
    sentinel_setup: tuple[RedisServer, RedisServer, SentinelProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    master, replica, sentinel = sentinel_setup
    conn = RedisConnection.from_url(
        f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0", retry=FAST_RETRY
    )
    await conn.execute("writing", lambda r: r.set("before", "1"))
    oracle_for(master.url).wait(1, 5000)
    master.kill()
    async with asyncio.timeout(30):
        await conn.execute("writing after failover", lambda r: r.set("after", "2"))
    assert oracle_for(replica.url).get("after") == b"2"  # the replica is the master now
    assert oracle_for(replica.url).get("before") == b"1"
    assert conn.state is ConnectionState.CONNECTED
    lines = [r.getMessage() for r in caplog.records if "unreachable while" in r.getMessage()]
    assert lines and all(
        line.startswith(f"Redis sentinel mymaster@127.0.0.1:{sentinel.port}/0 unreachable")
        for line in lines
    )
    await wait_until(lambda: conn.stats.outage_since is None, what="the outage to end")
    await conn.close()
