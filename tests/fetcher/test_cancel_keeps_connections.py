"""A call cancelled at shutdown does not cost the next call a new connection (issue 9 item 4
leftover): redis-py closes the one connection a cancelled command used, so the connection
owner keeps the pool's other idle connections. Before, it closed them all, and the last ack
flush after the drain's cancel reconnected: on a 300 ms link the handshake (CLIENT SETNAME,
then CLIENT SETINFO) cost two more round trips before the ack itself."""

from __future__ import annotations

import asyncio
import time

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.toxiproxy import ToxiproxyServer
from steadfetch.fetcher import RedisConnection
from steadfetch.worker.redis_server import free_port

LATENCY_MS = 300


def connections_received(oracle: redis.Redis) -> int:
    return int(oracle.info("stats")["total_connections_received"])


async def test_a_cancelled_call_leaves_the_idle_connections_for_the_next_one(
    redis_server: RedisServer, toxiproxy_server: ToxiproxyServer
) -> None:
    listen = free_port()
    proxy = toxiproxy_server.api.create_proxy(
        "cancel-keeps", f"127.0.0.1:{listen}", f"127.0.0.1:{redis_server.port}"
    )
    conn = RedisConnection.from_url(f"redis://127.0.0.1:{listen}/0", name="steadfetch-test")
    oracle = redis.Redis(port=redis_server.port, socket_timeout=10)
    try:
        # Two connections in the pool: two calls at once.
        await asyncio.gather(*(conn.execute("warming", lambda r: r.ping()) for _ in range(2)))
        proxy.add_toxic("latency", stream="downstream", latency=LATENCY_MS)
        # One call in flight (its reply delayed) is cancelled, as the acks task is at shutdown.
        async with asyncio.TaskGroup() as group:
            pending = group.create_task(conn.execute("in flight", lambda r: r.get("k")))
            await asyncio.sleep(LATENCY_MS / 3000)  # the command is sent, its reply delayed
            pending.cancel()
        assert pending.cancelled()
        before = connections_received(oracle)
        began = time.monotonic()
        assert await conn.execute("the last ack flush", lambda r: r.set("k", "v"))
        took = time.monotonic() - began
        print(f"call after a cancel: {took:.3f} s through {LATENCY_MS} ms of latency")
        assert connections_received(oracle) == before, "the next call opened a new connection"
        # The connection is clean: its replies are its own.
        assert await conn.execute("reading back", lambda r: r.get("k")) == b"v"
    finally:
        await conn.close()
        oracle.close()
