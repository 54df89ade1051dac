"""Fixtures for the Redis Cluster tests: one real cluster (three primaries, three replicas) per
session, flushed before each test, and an oracle that reads it independently of the code under
test (redis-py's cluster client, no retries of its own beyond following MOVED)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.cluster import ClusterNode, RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster
from steadfetch.fetcher import RedisConnection
from tests.fetcher.conftest import FAST_RETRY
from tests.fixtures import require


@pytest.fixture(scope="session")
def cluster_session() -> Iterator[LocalCluster]:
    cluster = require(lambda: LocalCluster().start())
    try:
        yield cluster
    finally:
        cluster.close()


def cluster_oracle(cluster: LocalCluster) -> RedisCluster:
    nodes = [ClusterNode("127.0.0.1", n.port) for n in cluster.nodes if n.running]
    return RedisCluster(startup_nodes=nodes, socket_timeout=5.0, socket_connect_timeout=2.0)


@pytest.fixture
def cluster(cluster_session: LocalCluster) -> Iterator[LocalCluster]:
    """The session's cluster, every primary flushed (a test that kills a node needs its own)."""
    cluster_session.wait_ok()
    oracle = cluster_oracle(cluster_session)
    try:
        oracle.flushall(target_nodes=RedisCluster.PRIMARIES)
    finally:
        oracle.close()
    yield cluster_session


@pytest.fixture
def oracle(cluster: LocalCluster) -> Iterator[RedisCluster]:
    client = cluster_oracle(cluster)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def conn(cluster: LocalCluster) -> AsyncIterator[RedisConnection]:
    connection = RedisConnection.from_url(cluster.url, retry=FAST_RETRY, read_timeout=5.0)
    try:
        yield connection
    finally:
        await connection.close()
