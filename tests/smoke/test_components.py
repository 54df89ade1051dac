"""Each real component is real: these fail if Redis, Toxiproxy or Docker were faked or missing.

redis-py is used here directly, as an independent oracle: the product's own Redis access lives in
``fetcher`` and is tested on its own.
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from steadfetch.chaos.env import Stack
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.toxiproxy import ToxiproxyServer

TIMEOUT = 1.0


def client(url: str) -> redis.Redis:
    """A client with explicit timeouts and no built-in retries (redis-py 8 retries 10 times)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


def test_redis_server_is_real(redis_server: RedisServer) -> None:
    info = client(redis_server.url).info("server")
    assert info["redis_version"].startswith("7.")
    assert info["tcp_port"] == redis_server.port


def test_toxiproxy_version(toxiproxy_server: ToxiproxyServer) -> None:
    assert toxiproxy_server.api.version() == "2.12.0"


def test_toxiproxy_version_in_stack(stack: Stack) -> None:
    assert stack.toxiproxy.version() == "2.12.0"


def test_ping_direct(stack: Stack) -> None:
    assert client(stack.direct_url).ping() is True


def test_ping_through_proxy(stack: Stack) -> None:
    c = client(stack.proxied_url)
    assert c.ping() is True
    # The proxy really forwards to this Redis: a key written directly is read through it.
    client(stack.direct_url).set("smoke", "via-direct")
    assert c.get("smoke") == b"via-direct"


def test_disabled_proxy_fails_fast_then_recovers(stack: Stack) -> None:
    c = client(stack.proxied_url)
    assert c.ping() is True
    stack.proxy.disable()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        c.ping()
    assert time.monotonic() - started < TIMEOUT + 1.0
    stack.proxy.enable()
    assert c.ping() is True


def test_latency_toxic_slows_ping(stack: Stack) -> None:
    c = redis.Redis.from_url(stack.proxied_url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    assert c.ping() is True
    stack.proxy.add_toxic("latency", latency=300)
    started = time.monotonic()
    assert c.ping() is True
    assert time.monotonic() - started >= 0.3
    assert stack.proxy.toxics()[0]["type"] == "latency"
