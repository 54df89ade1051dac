"""The Redis Cluster as containers (chaos.env.cluster.DockerCluster), what the docker
environment's cluster scenario stands on: six nodes on one Docker network, each at its own
address there, reached from this process as the worker reaches them; a killed primary's replica
takes over; a node that cannot start leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from steadfetch.chaos.env.cluster import DockerCluster
from steadfetch.chaos.env.containers import docker_client, require_images
from steadfetch.fetcher import RedisConnection
from tests.fetcher.conftest import FAST_RETRY
from tests.fixtures import require
from tests.polling import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]


@pytest.fixture
def network() -> Iterator[Any]:
    """A testcontainers Network of its own; afterwards no container is left on it."""
    from testcontainers.core.network import Network

    client = require(docker_client)
    require(lambda: require_images(client))
    net = Network().create()
    try:
        yield net
    finally:
        left = client.containers.list(all=True, filters={"network": net.name})
        for container in left:
            container.remove(force=True)
        net.remove()
        assert left == [], "the cluster left containers behind"


def test_a_docker_cluster_serves_the_fetcher_at_the_nodes_network_addresses_and_fails_over(
    network: Any,
) -> None:
    with DockerCluster(network) as cluster:
        hosts = {node.host for node in cluster.nodes}
        assert len(hosts) == 6 and "127.0.0.1" not in hosts  # each its own address, none loopback
        assert sorted(cluster.role(n) for n in cluster.nodes) == ["master"] * 3 + ["slave"] * 3
        # Every node announces the address this process reaches it at (what the worker gets in
        # CLUSTER SLOTS), not one only the containers can see.
        announced = {
            line.split()[1].split("@")[0]
            for line in cluster.cli(cluster.nodes[0], "cluster", "nodes").splitlines()
        }
        assert announced == {f"{n.host}:{n.port}" for n in cluster.nodes}

        asyncio.run(_execute(cluster.url, lambda r: r.set("k", b"v")))
        assert asyncio.run(_execute(cluster.url, lambda r: r.get("k"))) == b"v"

        victim = cluster.primary_of("k")
        cluster.wait_replicated(victim)
        victim.kill()
        assert not victim.running
        promoted = wait_for("a replica promoted", lambda: _primary_or_none(cluster, "k"), 30.0)
        assert promoted is not victim and promoted.host != victim.host
        # The replica had it before the kill: no write lost.
        assert asyncio.run(_execute(cluster.url, lambda r: r.get("k"))) == b"v"

        victim.start()  # the container again: it rejoins as the promoted node's replica
        cluster.wait_ok()
        assert cluster.role(victim) == "slave"
        assert cluster.primary_of("k") is promoted


def test_a_node_that_cannot_start_fails_the_start_with_its_reason_and_leaves_nothing(
    network: Any,
) -> None:
    cluster = DockerCluster(network, extra_args=["--no-such-option", "yes"])
    with pytest.raises(RuntimeError, match="no-such-option"):
        cluster.start()
    assert cluster.nodes == []  # the network fixture checks that no container is left


def _primary_or_none(cluster: DockerCluster, key: str) -> Any:
    try:
        return cluster.primary_of(key)
    except LookupError:
        return None


async def _execute(url: str, command: Callable[[Any], Awaitable[Any]]) -> Any:
    """One command through the fetcher's own connection owner on a redis+cluster:// URL."""
    conn = RedisConnection.from_url(url, retry=FAST_RETRY, read_timeout=5.0)
    try:
        return await conn.execute("a test command", command)
    finally:
        await conn.close()
