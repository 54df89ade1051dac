"""What an outage is, against a real redis-server: it lasts while any call keeps failing (an
unrelated success neither ends it nor resets its clock), and a connection the server closed while
idle is replaced without one.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import ConnectionState, RedisConnection
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.fetcher.test_connection import outage_lines, restored_lines
from tests.polling import wait_until


async def test_an_unrelated_success_does_not_end_the_outage_of_a_failing_call(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply too large for the output buffer fails the same read forever, while pings go
    through: one outage, whose lines' ``down`` is the failing read's own age, and one recovery
    line when the read succeeds."""
    caplog.set_level(logging.INFO, "fetcher")
    oracle = oracle_for(redis_server.url)
    oracle.set("big", b"x" * 200_000)
    oracle.config_set("client-output-buffer-limit", "normal 64kb 0 0")
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY)
    pings = 0

    async def ping_forever() -> None:
        nonlocal pings
        while True:
            await conn.execute("pinging", lambda r: r.ping())
            pings += 1
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        pinger = tg.create_task(ping_forever())
        read = tg.create_task(conn.execute("reading the big value", lambda r: r.get("big")))
        await wait_until(lambda: (conn.stats.retry_attempt or 0) >= 6, what="six failed reads")
        seen = pings
        await wait_until(lambda: pings >= seen + 3, what="pings succeeding meanwhile")
        assert conn.state is ConnectionState.RECONNECTING
        assert conn.stats.outages == 1
        assert restored_lines(caplog) == []  # no flapping recovery lines
        downs = [float(m["down"]) for m in outage_lines(caplog)]
        assert {m["op"] for m in outage_lines(caplog)} == {"reading the big value"}
        assert downs == sorted(downs) and downs[-1] >= 0.2, downs  # its own age, never reset
        oracle.config_set("client-output-buffer-limit", "normal 0 0 0")
        assert len(await read) == 200_000
        pinger.cancel()
    assert conn.state is ConnectionState.CONNECTED
    assert conn.stats.outages == 1 and len(restored_lines(caplog)) == 1
    assert conn.stats.retry_attempt is None and conn.stats.retry_next_at is None
    oracle.close()
    await conn.close()


async def test_a_connection_closed_by_the_server_while_idle_is_replaced_quietly(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "fetcher")
    oracle = oracle_for(redis_server.url)
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY, name="idle-test")
    await conn.check()
    await conn.execute("popping", lambda r: r.blpop(["q"], 0.1), block_timeout=0.1)
    oracle.config_set("timeout", "1")

    def ours_connected() -> bool:
        return any(c.get("name") == "idle-test" for c in oracle.client_list())

    await wait_until(lambda: not ours_connected(), what="the server to close both idle connections")
    assert await conn.execute("reading", lambda r: r.get("k")) is None
    assert await conn.execute("popping", lambda r: r.blpop(["q"], 0.1), block_timeout=0.1) is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
    assert conn.stats.outages == 0 and conn.state is ConnectionState.CONNECTED
    assert conn.stats.quiet_reconnects == 2  # one per pool: the plain one and the blocking one
    assert "closed an idle connection" in caplog.text

    # A server that is gone is still an outage, though its first symptom looks the same.
    oracle.config_set("timeout", "0")
    await conn.check()
    redis_server.stop()
    async with asyncio.TaskGroup() as tg:
        call = tg.create_task(conn.execute("reading", lambda r: r.get("k")))
        await wait_until(lambda: conn.stats.outages == 1, what="the outage to be counted")
        assert conn.state is ConnectionState.RECONNECTING
        redis_server.start()
    assert call.result() is None
    assert outage_lines(caplog) and len(restored_lines(caplog)) == 1
    oracle.close()
    await conn.close()
