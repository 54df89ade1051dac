"""Sentinel for real: resolve the master through a running Sentinel, and survive a failover."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import ConnectionState, RedisConnection
from tests.fetcher.conftest import FAST_RETRY, SentinelProcess, oracle_for
from tests.polling import wait_for, wait_until


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
    assert conn.primary is None  # not resolved before the first call
    await conn.execute("writing", lambda r: r.set("before", "1"))
    assert (conn.primary, conn.failovers) == (f"127.0.0.1:{master.port}", 0)
    primary = oracle_for(master.url)
    # The replica may still be in its first sync: WAIT in short steps (each well inside the
    # oracle's 5 s read timeout) until it confirms the write, so the failover cannot lose it.
    wait_for("the write on the replica", lambda: primary.wait(1, 1000) >= 1 or None, timeout=30)
    master.kill()
    async with asyncio.timeout(30):
        await conn.execute("writing after failover", lambda r: r.set("after", "2"))
    assert oracle_for(replica.url).get("after") == b"2"  # the replica is the master now
    assert oracle_for(replica.url).get("before") == b"1"
    assert conn.state is ConnectionState.CONNECTED
    assert (conn.primary, conn.failovers) == (f"127.0.0.1:{replica.port}", 1)
    assert _moved_lines(caplog) == [
        f"Redis sentinel mymaster@127.0.0.1:{sentinel.port}/0: primary moved from "
        f"127.0.0.1:{master.port} to 127.0.0.1:{replica.port} (failover seen through the "
        "sentinels; connections to the old primary dropped)"
    ]
    lines = [r.getMessage() for r in caplog.records if "unreachable while" in r.getMessage()]
    assert lines and all(
        line.startswith(f"Redis sentinel mymaster@127.0.0.1:{sentinel.port}/0 unreachable")
        for line in lines
    )
    await wait_until(lambda: conn.stats.outage_since is None, what="the outage to end")
    await conn.close()


async def sentinel_failover(port: int, within: float = 20.0) -> None:
    """SENTINEL FAILOVER, asked again while the sentinel has no replica it deems good yet
    (NOGOODSLAVE: it has not had a fresh INFO reply from the replica)."""
    client = oracle_for(f"redis://127.0.0.1:{port}")
    deadline = time.monotonic() + within
    while True:
        try:
            client.execute_command("SENTINEL", "FAILOVER", "mymaster")
            return
        except redis.ResponseError as exc:
            if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def _moved_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "primary moved from" in r.getMessage()]


async def test_sentinel_failover_is_followed_and_said_in_one_line(
    sentinel_setup: tuple[RedisServer, RedisServer, SentinelProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SENTINEL FAILOVER demotes a live primary: pooled connections to it get READONLY (or are
    closed by the demotion); writes go on, through the sentinels, to the promoted replica."""
    caplog.set_level(logging.INFO, "fetcher")
    master, replica, sentinel = sentinel_setup
    endpoint = f"sentinel mymaster@127.0.0.1:{sentinel.port}/0"
    conn = RedisConnection.from_url(
        f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0", retry=FAST_RETRY
    )
    try:
        written = 0

        async def write() -> None:
            nonlocal written
            written += 1
            await conn.execute("writing", lambda r: r.rpush("k", written))

        await write()
        await sentinel_failover(sentinel.port)
        new_master = oracle_for(replica.url)
        async with asyncio.timeout(30):
            while new_master.info("replication")["role"] != "master" or not _moved_lines(caplog):
                await write()
                await asyncio.sleep(0.01)
            for _ in range(5):
                await write()
        assert _moved_lines(caplog) == [
            f"Redis {endpoint}: primary moved from 127.0.0.1:{master.port} to "
            f"127.0.0.1:{replica.port} (failover seen through the sentinels; connections to the "
            "old primary dropped)"
        ]
        assert int(new_master.lindex("k", -1)) == written  # the last writes reached the new one
        assert conn.state is ConnectionState.CONNECTED
    finally:
        await conn.close()
