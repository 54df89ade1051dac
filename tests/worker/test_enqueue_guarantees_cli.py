"""``steadfetch enqueue --unique-for`` and ``--durability`` through the real binary."""

from __future__ import annotations

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from tests.worker.test_admin_cli import cli, run


def test_enqueue_of_a_reserved_id_prints_the_id_and_says_duplicate(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    url = redis_server.url
    args = ("enqueue", "work", "once", "--job-id", "order-9", "--unique-for", "60")
    first = cli(url, *args)
    assert (first.stdout.strip(), first.stderr) == ("order-9", "")
    second = cli(url, *args)
    assert second.stdout.strip() == "order-9"
    assert "duplicate: job order-9 is already queued" in second.stderr
    assert oracle.llen("steadfetch:queue:default") == 1
    assert oracle.pttl("steadfetch:unique:order-9") > 0


def test_enqueue_with_durability_and_no_replica_fails_saying_not_confirmed(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    result = run(
        redis_server.url, "enqueue", "work", "x", "--job-id", "d1",
        "--durability", "replicas=1,timeout=100ms", "--timeout", "1",
    )  # fmt: skip
    assert result.returncode != 0
    assert "NOTCONFIRMED" in result.stderr and "0 of 1 replica(s)" in result.stderr
    # performed once (the reservation that durability implies made the retries write nothing)
    assert oracle.llen("steadfetch:queue:default") == 1
