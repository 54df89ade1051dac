"""Redis settings that silently lose jobs: the worker reads ``maxmemory-policy`` at start and
after each reconnect and warns when it is not ``noeviction``, or says it could not check;
``steadfetch status`` shows it. Real binary, real redis-server, real ACL user."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from tests.fixtures import require
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, run_cli
from tests.worker.test_observability import metric

CHECK_LINE = "maxmemory-policy"


def status(url: str, *flags: str) -> str:
    result = run_cli("status", *flags, "--redis-url", url)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_allkeys_lru_is_a_warning_at_start_and_in_status(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    oracle.config_set("maxmemory-policy", "allkeys-lru")
    worker = start_worker(redis_server.url, "--metrics-port", "0").started()
    line = worker.wait_log(
        r"WARNING worker: Redis \S+ has maxmemory-policy allkeys-lru: .*"
    ).group()
    scrape = http_get(worker.health_port(), "/metrics")[1]
    assert metric(scrape, "steadfetch_redis_eviction_safe") == 0
    assert "jobs vanish" in line and "CONFIG SET maxmemory-policy noeviction" in line
    policy = json.loads(status(redis_server.url, "--json"))["eviction_policy"]
    assert policy["policy"] == "allkeys-lru" and policy["safe"] is False
    assert "redis maxmemory-policy: allkeys-lru  WARNING: Redis" in status(redis_server.url)
    assert worker.stop() == 0


def test_noeviction_says_nothing(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    assert oracle.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    worker = start_worker(redis_server.url).started()
    assert worker.stop() == 0
    assert CHECK_LINE not in worker.log
    policy = json.loads(status(redis_server.url, "--json"))["eviction_policy"]
    assert policy == {"policy": "noeviction", "safe": True, "note": "ok"}
    assert "redis maxmemory-policy: noeviction\n" in status(redis_server.url) + "\n"


def test_a_user_without_config_permission_is_told_it_could_not_be_checked(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    oracle.acl_setuser(
        "limited", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
        commands=["+@all", "-config"],
    )  # fmt: skip
    url = f"redis://limited:s3cret@{redis_server.host}:{redis_server.port}/0"
    worker = start_worker(url).started()
    line = worker.wait_log(r"WARNING worker: could not check the maxmemory-policy .*").group()
    assert "NOPERM" in line or "NoPermission" in line, line
    assert "s3cret" not in worker.log
    policy = json.loads(status(url, "--json"))["eviction_policy"]
    assert policy["policy"] is None and policy["safe"] is None
    assert policy["note"].startswith("could not check the maxmemory-policy")
    assert worker.stop() == 0


@pytest.fixture
def renamed_config() -> Iterator[RedisServer]:
    server = require(lambda: RedisServer(extra_args=["--rename-command", "CONFIG", ""]).start())
    try:
        yield server
    finally:
        server.close()


def test_a_renamed_config_command_is_told_it_could_not_be_checked(
    renamed_config: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(renamed_config.url).started()
    worker.wait_log(r"WARNING worker: could not check the maxmemory-policy .*unknown command")
    assert worker.stop() == 0


def test_the_policy_is_read_again_after_a_reconnect(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(redis_server.url, "--retry-cap", "0.5").started()
    redis_server.extra_args += ["--maxmemory-policy", "volatile-lru"]
    redis_server.restart()
    line = worker.wait_log(r"WARNING worker: Redis \S+ has maxmemory-policy volatile-lru: .*")
    assert "heartbeats and leases" in line.group()
    assert worker.stop() == 0
