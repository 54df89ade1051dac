"""``dead-letter retry`` reserves the job's id on a Redis Cluster too: the reservation lives in
the queue's slot (``steadfetch:unique:{Q}:ID``), declared in the one script call of that slot."""

from __future__ import annotations

from redis.cluster import RedisCluster

from steadfetch.fetcher import Admin, JobSpec, Producer, RedisConnection
from tests.cluster.test_dead_letter import HIGH, KEYS, dead_letter


async def test_retry_on_a_cluster_honours_and_takes_the_id_reservation(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    await dead_letter(conn, JobSpec("t", queue="high", job_id="c-1", unique_for=0))
    await dead_letter(conn, JobSpec("t", queue="high", job_id="c-2"))
    again = await Producer(conn).enqueue("t", queue="high", job_id="c-1", unique_for=0)
    assert not again.duplicate
    report = await Admin(conn).dead_letter_retry()
    assert report.requeued == 1
    [refusal] = report.refused
    assert refusal.job_id == "c-1" and "its id is reserved" in refusal.reason
    assert oracle.llen(HIGH) == 2 and oracle.llen(KEYS.dead_of(HIGH)) == 1
    # c-2's retry took its id: a producer's unique enqueue of it writes nothing.
    assert oracle.exists(KEYS.unique("c-2", HIGH))
    assert (await Producer(conn).enqueue("t", queue="high", job_id="c-2", unique_for=0)).duplicate
