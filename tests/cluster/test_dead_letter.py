"""``dead-letter list|retry|purge`` on a real Redis Cluster: each queue's dead-letter list lives in
its queue's slot (``steadfetch:dead:{Q}``), found by SCAN on every primary, and each retry is one
script call in that slot (queue and wake keys declared)."""

from __future__ import annotations

import json

import pytest
from redis.cluster import RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster
from steadfetch.fetcher import Admin, Fetcher, JobSpec, Keys, Producer, RedisConnection
from steadfetch.fetcher.errors import WrongTypeError
from tests.worker.harness import run_cli

KEYS = Keys(cluster=True)
HIGH, LOW = KEYS.queue_key("high"), KEYS.queue_key("low")


async def dead_letter(conn: RedisConnection, *specs: JobSpec) -> list[str]:
    """Enqueue ``specs`` and dead-letter each (in enqueue order over the queues given)."""
    ids = await Producer(conn).enqueue_many(specs)
    fetcher = Fetcher(conn, "w1", sorted({s.queue for s in specs}))
    await fetcher.register()
    by_id = {job.id: job for job in await fetcher.fetch(len(specs))}
    for job_id in ids:
        await fetcher.dead_letter(by_id[job_id], "poison")
    await fetcher.unregister()
    return ids


def queue_ids(oracle: RedisCluster, queue_key: str) -> list[str]:
    return [json.loads(raw)["id"] for raw in oracle.lrange(queue_key, 0, -1)]


async def test_list_retry_and_purge_work_over_the_queues_of_every_primary(
    cluster: LocalCluster, conn: RedisConnection, oracle: RedisCluster
) -> None:
    assert cluster.primary_of(HIGH).port != cluster.primary_of(LOW).port
    h1, l1, h2 = await dead_letter(
        conn, JobSpec("t", queue="high"), JobSpec("t", queue="low"), JobSpec("t", queue="high")
    )
    oracle.rpush("steadfetch:dead:{a}{b}", b"no queue key holds a brace: not a dead list")
    admin = Admin(conn)
    assert await admin.dead_lists() == sorted([KEYS.dead_of(HIGH), KEYS.dead_of(LOW)])
    with pytest.raises(ValueError, match="limit must be >= 1"):
        await admin.dead_letter_list(limit=0)
    listed = await admin.dead_letter_list()
    assert [json.loads(e["raw"])["id"] for e in listed] == [h1, l1, h2]  # by failed_at
    assert [e["queue"] for e in await admin.dead_letter_list(limit=2)] == [HIGH, LOW]

    oracle.delete(KEYS.wake(HIGH), KEYS.wake(LOW))  # the enqueues' tokens
    report = await admin.dead_letter_retry()
    assert (report.requeued, report.refused) == (3, [])
    assert (queue_ids(oracle, HIGH), queue_ids(oracle, LOW)) == ([h1, h2], [l1])
    assert {json.loads(raw)["attempt"] for raw in oracle.lrange(HIGH, 0, -1)} == {1}
    assert oracle.llen(KEYS.wake(HIGH)) >= 1 and oracle.llen(KEYS.wake(LOW)) == 1
    assert await admin.dead_lists() == []
    assert await admin.dead_letter_list() == []

    oracle.delete(HIGH, LOW)
    await dead_letter(conn, JobSpec("t", queue="high"), JobSpec("t", queue="low"))
    assert await admin.dead_letter_purge() == 2
    assert oracle.exists(KEYS.dead_of(HIGH), KEYS.dead_of(LOW)) == 0
    assert await admin.dead_letter_purge() == 0


async def test_retry_by_job_id_and_limit_count_over_all_lists(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    specs = [JobSpec("t", (i,), queue=q) for i in range(2) for q in ("high", "low")]
    ids = await dead_letter(conn, *specs)
    admin = Admin(conn)
    report = await admin.dead_letter_retry(job_id=ids[3])  # the second job of low
    assert (report.requeued, report.refused) == (1, [])
    assert queue_ids(oracle, LOW) == [ids[3]]
    report = await admin.dead_letter_retry(limit=2)  # the lists in key order: high's first
    assert report.requeued == 2
    assert queue_ids(oracle, HIGH) == [ids[0], ids[2]]
    assert oracle.llen(KEYS.dead_of(LOW)) == 1


async def test_an_entry_that_cannot_be_retried_stays_and_says_why(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    """An entry naming another queue than the one whose list holds it would need a write in
    another slot; a destination of the wrong type is refused by the script in the queue's slot;
    an unparsable entry stays. The good entry beside them goes back."""
    elsewhere, wrong_type, good = await dead_letter(
        conn, JobSpec("t", queue="low"), JobSpec("t", queue="odd"), JobSpec("t", queue="high")
    )
    moved = oracle.lpop(KEYS.dead_of(LOW))
    oracle.rpush(KEYS.dead_of(HIGH), moved, b"not json")
    oracle.delete(KEYS.queue_key("odd"))
    oracle.set(KEYS.queue_key("odd"), "not a list")
    report = await Admin(conn).dead_letter_retry()
    assert report.requeued == 1 and queue_ids(oracle, HIGH) == [good]
    reasons = {(r.job_id, r.queue): r.reason for r in report.refused}
    assert "lies in the dead-letter list of " + HIGH in reasons[(elsewhere, LOW)]
    assert "holds a string, not a list" in reasons[(wrong_type, KEYS.queue_key("odd"))]
    assert reasons[(None, None)] == "the entry is not JSON"
    assert oracle.llen(KEYS.dead_of(HIGH)) == 2  # the moved entry and the unparsable one
    assert oracle.llen(KEYS.dead_of(KEYS.queue_key("odd"))) == 1


async def test_a_dead_letter_key_of_another_type_is_named(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    """A foreign value under a dead-letter key name: the command stops naming the key, as a
    shared key of the wrong type does on one Redis, and deletes nothing."""
    broken = KEYS.dead_of(KEYS.queue_key("broken"))
    oracle.set(broken, "foreign")
    admin = Admin(conn)
    for call in (admin.dead_letter_list(), admin.dead_letter_retry()):
        with pytest.raises(WrongTypeError, match=f"dead-letter list {broken}.*WRONGTYPE"):
            await call
    assert oracle.get(broken) == b"foreign"


async def test_the_cli_lists_retries_and_purges_on_a_cluster_url(
    cluster: LocalCluster, conn: RedisConnection, oracle: RedisCluster
) -> None:
    h, low = await dead_letter(conn, JobSpec("t", queue="high"), JobSpec("t", queue="low"))

    def cli(*args: str) -> str:
        result = run_cli("dead-letter", *args, "--redis-url", cluster.url)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    listed = [json.loads(line) for line in cli("list").splitlines()]
    assert [json.loads(e["raw"])["id"] for e in listed] == [h, low]
    assert cli("retry", low) == "requeued 1 dead-lettered job(s)"
    assert queue_ids(oracle, LOW) == [low]
    assert cli("purge", "--yes") == "purged 1 dead-letter entry"
    assert oracle.exists(KEYS.dead_of(HIGH)) == 0
