"""``steadfetch enqueue --unique-for``: the second enqueue of a reserved id says 'duplicate'."""

from __future__ import annotations

import redis

from chaos.env.redis_server import RedisServer
from tests.worker.test_admin_cli import cli


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
