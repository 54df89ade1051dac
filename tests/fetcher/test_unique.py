"""Idempotent enqueue against a real redis-server: a job id reserved while the job lives and for
a window after it finished (fetcher/unique.py, lua/enqueue.lua)."""

from __future__ import annotations

import json

import pytest
import redis

from steadfetch.fetcher import Fetcher, JobSpec, Keys, Producer, RedisConnection, WrongTypeError

KEYS = Keys()
QUEUE = KEYS.queue_key("default")


def _ids(oracle: redis.Redis, key: str = QUEUE) -> list[str]:
    return [json.loads(raw)["id"] for raw in oracle.lrange(key, 0, -1)]


async def test_a_second_enqueue_of_a_reserved_id_writes_nothing_and_says_duplicate(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn)
    first = await producer.enqueue("t", job_id="order-7", unique_for=60)
    again = await Producer(conn).enqueue("t", job_id="order-7", unique_for=60)
    delayed = await producer.enqueue("t", job_id="order-7", unique_for=60, delay=30)
    assert (first, first.duplicate) == ("order-7", False)
    assert (again, again.duplicate, delayed.duplicate) == ("order-7", True, True)
    assert _ids(oracle) == ["order-7"] and oracle.zcard(KEYS.scheduled) == 0
    # Without a reservation nothing changes: the id is pushed again (today's behaviour).
    plain = await producer.enqueue("t", job_id="order-7")
    assert not plain.duplicate and _ids(oracle) == ["order-7", "order-7"]


async def test_one_call_with_the_same_id_twice_writes_it_once(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn, unique_for=5).enqueue_many(
        [JobSpec("t", job_id="a"), JobSpec("t", job_id="b"), JobSpec("t", job_id="a")]
    )
    assert [(i, i.duplicate) for i in ids] == [("a", False), ("b", False), ("a", True)]
    assert _ids(oracle) == ["a", "b"]


async def test_the_reservation_lasts_while_running_and_the_window_after_the_ack(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn, unique_for=30)
    await producer.enqueue("t", job_id="j1")
    await producer.enqueue("t", job_id="j0", unique_for=0)
    assert oracle.pttl(KEYS.unique("j1")) > 24 * 3600 * 1000  # the hold: no settle yet
    fetcher = Fetcher(conn, "w1", ["default"])
    jobs = await fetcher.fetch(10)
    assert sorted(j.id for j in jobs) == ["j0", "j1"]
    assert (await producer.enqueue("t", job_id="j1")).duplicate  # running
    await fetcher.ack_many(jobs)
    assert 0 < oracle.pttl(KEYS.unique("j1")) <= 30_000  # the window after it finished
    assert not oracle.exists(KEYS.unique("j0"))  # window 0: free at once
    assert (await producer.enqueue("t", job_id="j1")).duplicate
    assert not (await producer.enqueue("t", job_id="j0")).duplicate
    assert _ids(oracle) == ["j0"]


async def test_a_retry_keeps_the_reservation_and_the_dead_letter_releases_it(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn, unique_for=0)
    await producer.enqueue("t", job_id="r", max_attempts=2)
    fetcher = Fetcher(conn, "w1", ["default"])
    (job,) = await fetcher.fetch(1)
    assert await fetcher.nack(job, "boom", delay=0) == "retried"
    assert oracle.exists(KEYS.unique("r"))  # scheduled: still reserved
    assert (await producer.enqueue("t", job_id="r")).duplicate
    await fetcher.promote_due()
    (retried,) = await fetcher.fetch(1)
    assert retried.attempt == 2  # the retried payload still carries its mark
    assert await fetcher.nack(retried, "boom again") == "dead"
    assert not oracle.exists(KEYS.unique("r"))
    assert not (await producer.enqueue("t", job_id="r")).duplicate


async def test_a_reservation_key_of_the_wrong_type_refuses_the_enqueue(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.rpush(KEYS.unique("x"), "not a reservation")
    with pytest.raises(WrongTypeError, match="nothing was written"):
        await Producer(conn).enqueue("t", job_id="x", unique_for=1)
    assert oracle.llen(QUEUE) == 0
