"""``Admin.dead_letter_retry`` (issue 9 §6): destination written first by one script, a wake
token, the entry removed only after; an entry that cannot be retried stays, with the reason."""

from __future__ import annotations

import asyncio
import json

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Admin, Fetcher, JobSpec, Keys, Producer, RedisConnection
from steadfetch.fetcher.admin import DEAD_LETTER_CHUNK

KEYS = Keys()


async def dead_letter(conn: RedisConnection, *specs: JobSpec) -> list[str]:
    ids = await Producer(conn).enqueue_many(specs)
    fetcher = Fetcher(conn, "w1", sorted({s.queue for s in specs}))
    for job in await fetcher.fetch(len(specs)):
        await fetcher.dead_letter(job, "poison")
    return ids


async def test_a_wrong_type_destination_leaves_the_entry_and_says_why(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Observed: the MULTI removed the entry, then the push failed: the job was lost."""
    bad, good = await dead_letter(conn, JobSpec("t", queue="a"), JobSpec("t", queue="b"))
    oracle.set(KEYS.queue_key("a"), "not a list")
    oracle.delete(KEYS.wake(KEYS.queue_key("b")))  # the enqueue's token
    report = await Admin(conn).dead_letter_retry()
    assert report.requeued == 1
    [refusal] = report.refused
    assert refusal.job_id == bad and "holds a string, not a list" in refusal.reason
    [entry] = oracle.lrange(KEYS.dead, 0, -1)
    assert json.loads(json.loads(entry)["raw"])["id"] == bad
    [raw] = oracle.lrange(KEYS.queue_key("b"), 0, -1)
    assert json.loads(raw)["id"] == good
    assert oracle.llen(KEYS.wake(KEYS.queue_key("b"))) == 1  # an idle fetcher wakes at once


async def test_retry_one_entry_by_job_id_across_chunks(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await dead_letter(conn, *(JobSpec("t", (i,)) for i in range(DEAD_LETTER_CHUNK + 20)))
    wanted = ids[DEAD_LETTER_CHUNK + 10]
    report = await Admin(conn).dead_letter_retry(job_id=wanted)
    assert (report.requeued, report.refused) == (1, [])
    [raw] = oracle.lrange(KEYS.queue_key("default"), 0, -1)
    assert (json.loads(raw)["id"], json.loads(raw)["attempt"]) == (wanted, 1)
    assert oracle.llen(KEYS.dead) == len(ids) - 1
    assert (await Admin(conn).dead_letter_retry(job_id="no-such-job")).requeued == 0


async def test_limit_counts_entries_read_and_unretriable_entries_stay(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.rpush(KEYS.dead, b"not json", json.dumps({"queue": KEYS.workers, "raw": "{}"}))
    await dead_letter(conn, *(JobSpec("t", (i,)) for i in range(5)))
    report = await Admin(conn).dead_letter_retry(limit=4)
    assert report.requeued == 2 and len(report.refused) == 2
    assert oracle.llen(KEYS.dead) == 5 and oracle.llen(KEYS.queue_key("default")) == 2
    report = await Admin(conn).dead_letter_retry()
    assert report.requeued == 3 and oracle.llen(KEYS.dead) == 2


async def test_retry_honours_an_id_a_producer_enqueued_again(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Observed: a producer enqueued the dead job's id again (unique), then the retry pushed
    the dead one as well: the job ran twice. The retry reserves the id as enqueue does: the
    entry stays, saying why, and the queue holds the producer's one job."""
    [job_id] = await dead_letter(conn, JobSpec("t", job_id="j-1", unique_for=0))
    again = await Producer(conn).enqueue("t", job_id="j-1", unique_for=0)
    assert not again.duplicate  # the dead job's reservation ended (window 0)
    report = await Admin(conn).dead_letter_retry()
    assert report.requeued == 0
    [refusal] = report.refused
    assert refusal.job_id == job_id and "its id is reserved" in refusal.reason
    assert oracle.llen(KEYS.queue_key("default")) == 1 and oracle.llen(KEYS.dead) == 1


async def test_a_retried_job_reserves_its_id_against_producers_and_other_retries(
    conn: RedisConnection, oracle: redis.Redis, redis_server: RedisServer
) -> None:
    """The other order: the retry first. A producer's unique enqueue of the id is then a
    duplicate, and a second dead entry of the same id (the job dead-lettered twice) is not
    retried beside the first, in one call or in two running at once."""
    producer = Producer(conn)
    await dead_letter(conn, JobSpec("t", job_id="j-2"))
    await dead_letter(conn, JobSpec("t", job_id="j-2"))  # no reservation: written twice
    other = RedisConnection.from_url(redis_server.url, read_timeout=5.0)
    try:
        first, second = await asyncio.gather(
            Admin(conn).dead_letter_retry(), Admin(other).dead_letter_retry()
        )
    finally:
        await other.close()
    assert first.requeued + second.requeued == 1
    reasons = [r.reason for r in first.refused + second.refused]
    assert reasons and all("its id is reserved" in reason for reason in reasons), reasons
    assert oracle.llen(KEYS.queue_key("default")) == 1 and oracle.llen(KEYS.dead) == 1
    assert (await producer.enqueue("t", job_id="j-2", unique_for=0)).duplicate
    # Once the retried job is settled, its reservation ends (window 0) and the id is free.
    fetcher = Fetcher(conn, "w2", ["default"])
    [job] = await fetcher.fetch(1)
    await fetcher.ack(job)
    assert (await Admin(conn).dead_letter_retry()).requeued == 1


async def test_a_reservation_key_of_another_type_leaves_the_entry_and_names_it(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    [job_id] = await dead_letter(conn, JobSpec("t", job_id="j-3"))
    oracle.rpush(KEYS.unique(job_id), "x")
    report = await Admin(conn).dead_letter_retry()
    [refusal] = report.refused
    assert report.requeued == 0 and KEYS.unique(job_id) in refusal.reason, refusal.reason
    assert "holds a list, not a string" in refusal.reason
    assert oracle.llen(KEYS.dead) == 1 and oracle.llen(KEYS.queue_key("default")) == 0
