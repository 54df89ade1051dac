"""Admin (status, workers, dead letters) and the producers (async, sync, one-shot deadlines)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import (
    Admin,
    Fetcher,
    JobSpec,
    Keys,
    Producer,
    RedisConnection,
    RedisUnavailable,
    SyncProducer,
)
from steadfetch.worker.redis_server import free_port
from tests.fetcher.conftest import FAST_RETRY

KEYS = Keys()


async def test_status_counts_queues_processing_scheduled_dead_and_workers(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn)
    await producer.enqueue_many([JobSpec("t", queue="high"), JobSpec("t"), JobSpec("t")])
    await producer.enqueue("t", queue="stats", format="resque")
    await producer.enqueue("t", delay=60)
    oracle.rpush(KEYS.dead, json.dumps({"queue": KEYS.queue_key("default"), "raw": "x"}))
    fetcher = Fetcher(conn, "w1", ["default"])
    await fetcher.register()
    await fetcher.heartbeat({"worker_id": "w1", "processed": 7}, ttl=30)
    assert len(await fetcher.fetch(1)) == 1
    status = await Admin(conn).status()
    assert status["queues"] == {"default": 1, "high": 1, "resque:stats": 1}
    assert status["processing"] == {"w1": 1}
    assert (status["scheduled"], status["dead"]) == (1, 1)
    assert status["workers"] == [{"worker_id": "w1", "processed": 7}]


async def test_workers_shows_an_expired_heartbeat_as_dead(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.sadd(KEYS.workers, "gone")
    assert await Admin(conn).workers() == [{"worker_id": "gone", "dead": True}]


async def test_dead_letters_list_retry_and_purge(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    job_id = await Producer(conn).enqueue("t", 1, max_attempts=1)
    fetcher = Fetcher(conn, "w1", ["default"])
    [job] = await fetcher.fetch(1)
    assert await fetcher.nack(job, ValueError("boom"), "tb") == "dead"
    oracle.rpush(KEYS.queue_key("default"), b"\xff not a job")
    assert await fetcher.fetch(1) == []  # the bad payload was dead-lettered
    admin = Admin(conn)
    entries = await admin.dead_letter_list()
    assert [e.get("error") for e in entries] == ["ValueError: boom", None]
    assert "raw_b64" in entries[1]
    report = await admin.dead_letter_retry()
    assert report.requeued == 1  # the undecodable one stays
    assert [r.reason.split(":")[0] for r in report.refused] == ["the payload is not a job"]
    [raw] = oracle.lrange(KEYS.queue_key("default"), 0, -1)
    assert (json.loads(raw)["id"], json.loads(raw)["attempt"]) == (job_id, 1)
    assert await admin.dead_letter_purge() == 1
    assert oracle.llen(KEYS.dead) == 0


def test_sync_producer_enqueues_in_one_round_trip(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with SyncProducer(redis_server.url) as producer:
        first = producer.enqueue("t", 1, queue="high", job_id="fixed-id", flag=True)
        more = producer.enqueue_many([{"task": "u", "args": [2]}, JobSpec("v", queue="high")])
    assert first == "fixed-id" and len(more) == 2
    high = [json.loads(r) for r in client.lrange(KEYS.queue_key("high"), 0, -1)]
    assert len(high) == 2
    assert (high[0]["id"], high[0]["task"], high[0]["kwargs"]) == ("fixed-id", "t", {"flag": True})
    assert client.llen(KEYS.queue_key("default")) == 1
    assert client.llen(KEYS.wake(KEYS.queue_key("high"))) == 2
    client.close()


def test_sync_producer_gives_up_at_its_deadline() -> None:
    url = f"redis://:pw-never-shown@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with (
        SyncProducer(url, deadline=0.5) as producer,
        pytest.raises(
            RedisUnavailable, match=r"unreachable while enqueueing 1 job\(s\) to \[x\]"
        ) as info,
    ):
        producer.enqueue("t", queue="x")
    assert time.monotonic() - started < 0.5 + 2.0
    assert "pw-never-shown" not in str(info.value) and "pw-never-shown" not in repr(producer)


async def test_enqueue_validates_its_arguments(conn: RedisConnection) -> None:
    producer = Producer(conn)
    with pytest.raises(ValueError, match="delay or eta, not both"):
        await producer.enqueue("t", delay=1, eta=2)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        await producer.enqueue("t", object())
    with pytest.raises(ValueError, match="non-empty"):
        await producer.enqueue("")
    assert await producer.enqueue_many([]) == []


async def test_wake_lists_stay_bounded(conn: RedisConnection, oracle: redis.Redis) -> None:
    producer = Producer(conn)
    for _ in range(5):
        await producer.enqueue_many([JobSpec("t") for _ in range(100)])
    assert oracle.llen(KEYS.wake(KEYS.queue_key("default"))) <= 16


async def test_scripts_are_reloaded_after_redis_forgets_them(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    fetcher = Fetcher(conn, "w1", ["default"])
    await Producer(conn).enqueue("t")
    assert len(await fetcher.fetch(1)) == 1
    oracle.script_flush()  # what a restart does: the next EVALSHA answers NOSCRIPT
    await Producer(conn).enqueue("t")
    [job] = await fetcher.fetch(1)
    await fetcher.ack(job)
    assert conn.stats.attempts == 0  # handled inside, not as an outage


async def test_a_blocking_fetch_survives_a_redis_restart(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY)
    fetcher = Fetcher(conn, "w1", ["high", "default"], block_timeout=0.5)
    assert await fetcher.fetch(1) == []
    redis_server.restart(kill=True)
    oracle.rpush(KEYS.queue_key("default"), json.dumps({"id": "j", "task": "t"}))
    jobs = await fetcher.fetch(1)
    assert [j.id for j in jobs] == ["j"]
    await conn.close()


async def test_admin_calls_give_up_at_their_deadline() -> None:
    conn = RedisConnection.from_url(f"redis://127.0.0.1:{free_port()}/0", retry=FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(
        RedisUnavailable, match=r"unreachable while listing queues: ConnectionRefusedError"
    ):
        await Admin(conn, deadline=0.5).status()
    assert time.monotonic() - started < 0.5 + 2.0
    await conn.close()
