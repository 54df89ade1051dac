"""Fixtures for the fetcher tests: a connection owner on a real redis-server, and an oracle.

The oracle is a plain redis-py client with explicit timeouts and no retries, used to set up and
inspect Redis independently of the code under test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.sentinel import SentinelProcess as ChaosSentinel
from steadfetch.fetcher import RedisConnection, RetryPolicy
from steadfetch.worker.redis_server import free_port
from tests.fixtures import require

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


class SentinelProcess(ChaosSentinel):
    """One Sentinel monitoring the fetcher tests' master as ``mymaster`` (quorum 1, fast)."""

    def __init__(self, master_port: int, directory: Path) -> None:
        super().__init__("127.0.0.1", master_port, directory)


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, SentinelProcess]]:
    """A master, a replica of it, and a Sentinel that already knows both."""
    master = require(lambda: RedisServer().start())
    replica = RedisServer().start()
    sentinel: SentinelProcess | None = None
    try:
        oracle_for(replica.url).replicaof("127.0.0.1", master.port)
        sentinel = SentinelProcess(master.port, tmp_path).start()
        watcher = redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=5.0)
        deadline = time.monotonic() + 20
        while not watcher.sentinel_slaves("mymaster"):
            if time.monotonic() > deadline:
                raise AssertionError("Sentinel did not discover the replica in 20 s")
            time.sleep(0.05)
        watcher.close()
        yield master, replica, sentinel
    finally:
        if sentinel is not None:
            sentinel.close()
        replica.close()
        master.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RedisServer, int, Path]]:
    """A redis-server with a TLS port (certificate for 127.0.0.1 from a throwaway CA).

    Yields the server, its TLS port and the CA certificate's path.
    """
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert, key, csr = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "server.csr"
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -keyout {ca_key} -out {ca} -days 1 -subj /CN=test-ca",
        f"req -newkey rsa:2048 -nodes -keyout {key} -out {csr} -subj /CN=127.0.0.1",
        f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 1 "
        f"-extfile {tmp_path / 'san.ext'}",
    ):
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    tls_port = free_port()
    tls_args = [
        *("--tls-port", str(tls_port)),
        *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"),
    ]
    server = require(lambda: RedisServer(extra_args=tls_args).start())
    try:
        yield server, tls_port, ca
    finally:
        server.close()
