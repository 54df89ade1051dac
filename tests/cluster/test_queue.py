"""The queue protocol on a real Redis Cluster (three primaries, three replicas): enqueue, fetch
in priority order over queues in different slots, ack, retry, dead-letter, promotion, recovery
of a dead worker and fencing of a zombie, each script call inside one slot."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from redis.cluster import RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster
from steadfetch.fetcher import (
    Admin,
    ConfigurationError,
    Fetcher,
    JobSpec,
    Keys,
    Producer,
    RedisConnection,
)
from tests.polling import wait_until

KEYS = Keys(cluster=True)
HIGH, LOW = KEYS.queue_key("high"), KEYS.queue_key("low")


def test_the_queues_of_these_tests_live_in_different_slots_on_different_primaries(
    cluster: LocalCluster, oracle: RedisCluster
) -> None:
    assert oracle.keyslot(HIGH) != oracle.keyslot(LOW)
    assert cluster.primary_of(HIGH).port != cluster.primary_of(LOW).port
    for key in (
        KEYS.processing("w", HIGH), KEYS.wake(HIGH), KEYS.scheduled_of(HIGH), KEYS.dead_of(HIGH),
        KEYS.queue_lease("w", HIGH), KEYS.unique("id", HIGH),
    ):  # fmt: skip
        assert oracle.keyslot(key) == oracle.keyslot(HIGH), key
    registry = {KEYS.workers, KEYS.heartbeat("w"), KEYS.lease("w"), KEYS.worker_queues("w")}
    assert len({oracle.keyslot(key) for key in registry}) == 1


async def test_fetch_keeps_priority_across_slots_and_acks_per_slot(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    producer = Producer(conn)
    low = [await producer.enqueue("t", i, queue="low") for i in range(3)]
    high = await producer.enqueue_many([{"task": "t", "queue": "high"} for _ in range(2)])
    fetcher = Fetcher(conn, "w1", ["high", "low"])
    await fetcher.register()
    jobs = await fetcher.fetch(4)
    assert [j.id for j in jobs] == [*high, *low[:2]]  # the higher queue first, then the bound
    assert oracle.llen(KEYS.processing("w1", HIGH)) == 2
    assert oracle.llen(KEYS.processing("w1", LOW)) == 2
    await fetcher.ack_many(jobs)  # one ACK per slot
    assert oracle.llen(KEYS.processing("w1", HIGH)) == oracle.llen(KEYS.processing("w1", LOW)) == 0
    assert [j.id for j in await fetcher.fetch(10)] == low[2:]
    await fetcher.unregister()


async def test_an_idle_fetcher_over_two_slots_wakes_for_a_job_in_either(
    conn: RedisConnection,
) -> None:
    fetcher = Fetcher(conn, "w1", ["high", "low"], block_timeout=5.0)
    producer = Producer(conn)
    for queue in ("low", "high"):
        waiting = asyncio.create_task(fetcher.fetch(1))
        await asyncio.sleep(0.2)  # let it block first (any moment will do: it polls by slot)
        job_id = await producer.enqueue("t", queue=queue)
        async with asyncio.timeout(4):  # well inside the 5 s block timeout
            assert [j.id for j in await waiting] == [job_id]


async def promoted(fetcher: Fetcher) -> None:
    """Poll promotion until one job moved (its score is a wall-clock time a few ms ahead)."""

    async def one() -> bool:
        return await fetcher.promote_due() == 1

    await wait_until(one, what="one due job promoted")


async def test_retry_dead_letter_and_promotion_stay_in_the_queue_slot(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    producer = Producer(conn)
    fetcher = Fetcher(conn, "w1", ["high", "low"], retry_base=0.01, retry_cap=0.01)
    await fetcher.register()
    await producer.enqueue("t", queue="low", max_attempts=2)
    [job] = await fetcher.fetch(1)
    assert await fetcher.nack(job, "boom") == "retried"
    assert oracle.zcard(KEYS.scheduled_of(LOW)) == 1 and oracle.exists("steadfetch:scheduled") == 0
    await promoted(fetcher)  # after the 10 ms backoff
    [again] = await fetcher.fetch(1)
    assert again.id == job.id and again.attempt == 2
    assert await fetcher.nack(again, "boom again") == "dead"
    [entry] = [json.loads(e) for e in oracle.lrange(KEYS.dead_of(LOW), 0, -1)]
    assert entry["queue"] == LOW and entry["error"] == "boom again"
    delayed = await producer.enqueue("t", queue="high", delay=0.01)
    assert oracle.zcard(KEYS.scheduled_of(HIGH)) == 1
    await promoted(fetcher)
    assert [j.id for j in await fetcher.fetch(5)] == [delayed]


async def test_a_dead_workers_jobs_go_back_to_the_head_of_each_queue(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    producer = Producer(conn)
    dying = Fetcher(conn, "dying", ["high", "low"], heartbeat_ttl=1.0)
    alive = Fetcher(conn, "alive", ["high", "low"], heartbeat_ttl=60)
    await dying.register()
    await alive.register()
    ids = [await producer.enqueue("t", i, queue=q) for q in ("high", "low") for i in range(2)]
    taken = await dying.fetch(10)
    assert [j.id for j in taken] == ids
    later = await producer.enqueue("t", "later", queue="low")
    await wait_until(
        lambda: not oracle.exists(KEYS.heartbeat("dying"), KEYS.queue_lease("dying", LOW)),
        within=10,
        what="the heartbeat and the lease copies to expire",
    )
    assert await alive.recover_dead_workers() == 4
    assert oracle.llen(KEYS.processing("dying", HIGH)) == 0
    assert not oracle.sismember(KEYS.workers, "dying")
    got = await alive.fetch(10)
    assert [j.id for j in got] == [*ids, later]  # recovered at the head, in order


async def test_a_zombie_cannot_ack_what_was_recovered_from_it(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    producer = Producer(conn)
    zombie = Fetcher(conn, "zombie", ["low"], heartbeat_ttl=1.0)
    survivor = Fetcher(conn, "survivor", ["low"], heartbeat_ttl=60)
    await zombie.register()
    await survivor.register()
    job_id = await producer.enqueue("t", queue="low")
    [job] = await zombie.fetch(1)
    await wait_until(
        lambda: not oracle.exists(KEYS.queue_lease("zombie", LOW)), within=10, what="expiry"
    )
    assert await survivor.recover_dead_workers() == 1
    [again] = await survivor.fetch(1)
    assert again.id == job_id
    await zombie.ack(job)  # fenced in the queue's slot: it rejoins and touches nothing
    assert oracle.lrange(KEYS.processing("survivor", LOW), 0, -1) == [again.raw]
    assert zombie.ownership.presumed_dead == 1
    await survivor.ack(again)


async def test_a_worker_id_or_queue_name_with_a_brace_is_refused_on_a_cluster(
    conn: RedisConnection,
) -> None:
    with pytest.raises(ConfigurationError, match="must not hold"):
        Fetcher(conn, "w{1}", ["low"])
    with pytest.raises(ConfigurationError, match="must not hold"):
        Fetcher(conn, "w1", ["lo{w}"])


async def test_status_counts_per_queue_keys(conn: RedisConnection, oracle: RedisCluster) -> None:
    producer = Producer(conn)
    fetcher = Fetcher(conn, "w1", ["high", "low"])
    await fetcher.register()
    await producer.enqueue("t", queue="high")
    await producer.enqueue("t", queue="low", delay=60)
    await producer.enqueue("t", queue="low")
    await producer.enqueue("t", queue="low")
    [job] = await fetcher.fetch(1)
    await fetcher.dead_letter(job, "bad")
    [held] = await fetcher.fetch(1)
    oracle.rpush(KEYS.processing("gone", LOW), b"left-behind")  # an unregistered worker's list
    admin = Admin(conn)
    status = await admin.status()
    assert status["queues"] == {"high": 0, "low": 1}  # high: known by its dead-letter list
    assert (status["scheduled"], status["dead"]) == (1, 1)
    assert status["processing"] == {"w1": 1, "gone": 1}
    await fetcher.ack(held)


async def test_resque_queues_keep_their_names_and_are_served(
    conn: RedisConnection, oracle: RedisCluster
) -> None:
    producer = Producer(conn)
    ids = await producer.enqueue_many(
        [
            JobSpec("t", queue="stats", format="resque"),
            JobSpec("t", queue="low"),
            JobSpec("t", queue="stats", format="resque"),
        ]
    )
    assert oracle.llen("resque:queue:stats") == 2  # the name Resque producers push to
    assert oracle.smembers("resque:queues") == {b"stats"}
    fetcher = Fetcher(conn, "w1", ["resque:stats", "low"])
    jobs = await fetcher.fetch(10)
    assert [j.queue for j in jobs] == ["resque:stats", "resque:stats", "low"]
    assert jobs[2].id == ids[1]
    await fetcher.ack_many(jobs)
    assert oracle.llen(KEYS.processing("w1", "resque:queue:stats")) == 0


async def test_fast_mode_over_two_slots(conn: RedisConnection, oracle: RedisCluster) -> None:
    producer = Producer(conn)
    fetcher = Fetcher(conn, "w1", ["high", "low"], mode="fast", block_timeout=5.0)
    low = await producer.enqueue("t", queue="low")
    high = await producer.enqueue("t", queue="high")
    assert [j.id for j in await fetcher.fetch(5)] == [high, low]
    waiting = asyncio.create_task(fetcher.fetch(1))
    await asyncio.sleep(0.2)  # any moment will do: it polls by slot
    later = await producer.enqueue("t", queue="low")
    async with asyncio.timeout(4):
        assert [j.id for j in await waiting] == [later]
    assert not oracle.exists(KEYS.processing("w1", LOW))


async def test_an_id_is_reserved_within_its_queue(conn: RedisConnection) -> None:
    producer = Producer(conn, unique_for=60)
    first = await producer.enqueue("t", queue="low", job_id="order-7")
    again = await producer.enqueue("t", queue="low", job_id="order-7")
    elsewhere = await producer.enqueue("t", queue="high", job_id="order-7")
    assert (first.duplicate, again.duplicate, elsewhere.duplicate) == (False, True, False)
    fetcher = Fetcher(conn, "w1", ["low"])
    [job] = await fetcher.fetch(5)
    await fetcher.ack(job)  # releases the reservation (window 60 s: still a duplicate)
    assert (await producer.enqueue("t", queue="low", job_id="order-7")).duplicate


async def test_the_sweep_gives_back_an_unregistered_workers_list_but_not_a_live_ones(
    conn: RedisConnection, oracle: RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fetcher")
    producer = Producer(conn)
    job_id = await producer.enqueue("t", queue="low")
    raw = oracle.lpop(LOW)
    oracle.rpush(KEYS.processing("gone", LOW), raw)  # a zombie that died before rejoining
    live = Fetcher(conn, "live", ["low"], heartbeat_ttl=60)
    await live.register()
    await producer.enqueue("t", queue="low")
    [held] = await live.fetch(1)
    survivor = Fetcher(conn, "survivor", ["low"], heartbeat_ttl=60)
    await survivor.register()
    assert await survivor.recover_dead_workers(sweep=True) == 1
    assert oracle.lrange(LOW, 0, -1) == [raw] and not oracle.exists(KEYS.processing("gone", LOW))
    assert oracle.lrange(KEYS.processing("live", LOW), 0, -1) == [held.raw]
    assert any(
        "recovered 1 job(s) from processing lists of unregistered worker(s)" in r.getMessage()
        and "gone (1 job)" in r.getMessage()
        for r in caplog.records
    )
    assert [j.id for j in await survivor.fetch(1)] == [job_id]


@pytest.mark.parametrize("what", ["worker-queues", "processing", "orphan"])
async def test_a_dead_workers_key_of_another_type_is_left_alone_and_named(
    conn: RedisConnection, oracle: RedisCluster, caplog: pytest.LogCaptureFixture, what: str
) -> None:
    """As on one Redis (tests/worker/test_outsider_attacks.py): a foreign value where a dead
    worker's queue set or processing list should be is named in a WARNING and left alone,
    never a WRONGTYPE that stops every worker's recovery."""
    caplog.set_level(logging.WARNING, "fetcher")
    dead = f"ghost-{what}"
    broken = KEYS.worker_queues(dead) if what == "worker-queues" else KEYS.processing(dead, LOW)
    if what != "orphan":  # registered, no heartbeat: recovery's
        oracle.sadd(KEYS.workers, dead)
        if what == "processing":
            oracle.sadd(KEYS.worker_queues(dead), LOW)
    if what == "worker-queues":
        oracle.set(broken, "not a set")
    else:
        oracle.hset(broken, "a", "b")
    survivor = Fetcher(conn, f"survivor-{what}", ["low"], heartbeat_ttl=60)
    await survivor.register()
    assert await survivor.recover_dead_workers(sweep=True) == 0
    assert any(
        "left alone while" in r.getMessage() and broken in r.getMessage() for r in caplog.records
    ), caplog.text
    assert oracle.type(broken) in (b"hash", b"string", b"none")  # never overwritten
    oracle.delete(broken)
    await survivor.unregister()
