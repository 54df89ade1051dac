"""``Admin.dead_letter_retry`` (issue 9 §6): destination written first by one script, a wake
token, the entry removed only after; an entry that cannot be retried stays, with the reason."""

from __future__ import annotations

import json

import redis

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
