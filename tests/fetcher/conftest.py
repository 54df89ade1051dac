"""Fixtures for the fetcher tests: a connection owner on a real redis-server, and an oracle.

The oracle is a plain redis-py client with explicit timeouts and no retries, used to set up and
inspect Redis independently of the code under test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.env.redis_server import RedisServer
from fetcher import RedisConnection, RetryPolicy

#: Short real waits, so outage tests take a second, not a minute.
FAST_RETRY = RetryPolicy(base=0.02, cap=0.2)


def oracle_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=5.0, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
def oracle(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = oracle_for(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def conn(redis_server: RedisServer) -> AsyncIterator[RedisConnection]:
    connection = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY, read_timeout=5.0)
    try:
        yield connection
    finally:
        await connection.close()


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail after ``within`` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)
