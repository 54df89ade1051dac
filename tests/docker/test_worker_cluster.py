"""The production image against a Redis Cluster of containers (chaos.env.cluster.DockerCluster)
on one Docker network: the nodes announce their network addresses, which the worker container
and this process on the host both reach, so one ``redis+cluster://`` URL serves both."""

from __future__ import annotations

from typing import Any

import pytest

from steadfetch.chaos.env.cluster import DockerCluster
from steadfetch.fetcher import SyncProducer
from tests.docker.conftest import LABEL, wait_logged
from tests.docker.test_worker_image import processed

pytestmark = pytest.mark.docker


def test_image_runs_jobs_from_a_cluster_url_of_container_addresses(
    docker_engine: Any, worker_image: str, network: Any
) -> None:
    with DockerCluster(network) as cluster:
        worker = docker_engine.containers.run(
            worker_image, detach=True, name=f"{network.name}-worker", labels=LABEL,
            network=network.name,
            environment={"STEADFETCH_REDIS_URL": cluster.url, "STEADFETCH_CONCURRENCY": "4"},
        )  # fmt: skip
        with SyncProducer(cluster.url, deadline=10.0) as producer:
            jobs = range(1, 21)
            producer.enqueue_many([{"task": "process_order", "args": [n, 0.01]} for n in jobs])
            wait_logged("the jobs done", lambda: set(jobs) <= processed(worker), worker)
        assert "Redis cluster" in worker.logs().decode()  # it did take the cluster URL
