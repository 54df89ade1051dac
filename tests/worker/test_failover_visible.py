"""Issue 11 §5 through the real binary: a Sentinel failover the worker followed shows in its
heartbeat, in ``/metrics`` and in ``status`` (the count and the primary it talks to now)."""

from __future__ import annotations

import re

from steadfetch.chaos.env.redis_server import RedisServer
from tests.fetcher.conftest import SentinelProcess, oracle_for, sentinel_setup
from tests.fetcher.test_sentinel import sentinel_failover
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, wait_for
from tests.worker.test_admin_cli import cli
from tests.worker.test_observability import metric
from tests.worker.test_twins_zombies import heartbeat

__all__ = ["sentinel_setup"]  # the fixture, used by name below


async def test_a_followed_failover_is_counted_in_the_heartbeat_metrics_and_status(
    sentinel_setup: tuple[RedisServer, RedisServer, SentinelProcess], start_worker: StartWorker
) -> None:
    master, replica, sentinel = sentinel_setup
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0"
    flags = ["--worker-id", "seer", "--metrics-port", "0", "--read-timeout", "1"]
    worker = start_worker(url, *flags).started()
    port = worker.health_port()
    old, new = f"127.0.0.1:{master.port}", f"127.0.0.1:{replica.port}"
    beat = wait_for("a heartbeat", lambda: heartbeat(oracle_for(master.url), "seer") or None)
    assert (beat["failovers"], beat["primary"]) == (0, old)
    await sentinel_failover(sentinel.port)
    promoted = oracle_for(replica.url)
    beat = wait_for(
        "a heartbeat on the new primary that counts the failover",
        lambda: (b := heartbeat(promoted, "seer")) and b.get("failovers") == 1 and b,
        timeout=60,
    )
    assert beat["primary"] == new
    body = http_get(port, "/metrics")[1]
    assert metric(body, "steadfetch_failovers_total") == 1
    assert re.search(rf'^steadfetch_redis_primary{{address="{new}"}} 1\.0$', body, re.M), body
    assert f"failovers=1 primary={new}" in cli(url, "status").stdout
    assert worker.stop() == 0
