"""Recovery of dead workers' jobs: heartbeat expiry, a SIGKILLed worker process, two racers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Fetcher, JobSpec, Keys, Producer, RedisConnection
from tests.fetcher.conftest import FAST_RETRY
from tests.polling import wait_until

KEYS = Keys()
REPO = Path(__file__).resolve().parents[2]


def queued_ids(oracle: redis.Redis, queue: str = "default") -> list[str]:
    return [json.loads(r)["id"] for r in oracle.lrange(KEYS.queue_key(queue), 0, -1)]


async def test_jobs_of_a_worker_whose_heartbeat_expired_go_back_to_the_head(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn).enqueue_many([JobSpec("t", (i,)) for i in range(5)])
    dying = Fetcher(conn, "dying", ["default"], heartbeat_ttl=1.5)  # outlives the next lines
    alive = Fetcher(conn, "alive", ["default"], heartbeat_ttl=60)
    await dying.register()
    await alive.register()
    assert len(await dying.fetch(3)) == 3
    assert len(await alive.fetch(1)) == 1
    assert await alive.recover_dead_workers() == 0  # nobody is dead yet
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("dying")) == 0, what="heartbeat expiry")
    assert await alive.recover_dead_workers() == 3
    assert queued_ids(oracle) == ids[:3] + ids[4:]  # at the head, in their original order
    assert oracle.smembers(KEYS.workers) == {b"alive"}
    assert oracle.llen(KEYS.processing("alive", KEYS.queue_key("default"))) == 1
    assert await alive.recover_dead_workers() == 0


async def test_a_heartbeat_re_registers_a_worker_that_was_recovered(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    fetcher = Fetcher(conn, "w1", ["default"], heartbeat_ttl=0.1)
    await fetcher.register()
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("w1")) == 0, what="heartbeat expiry")
    assert await Fetcher(conn, "other", ["default"]).recover_dead_workers() == 0
    assert oracle.smembers(KEYS.workers) == set()
    await fetcher.heartbeat({"worker_id": "w1", "processed": 3}, ttl=30)
    assert oracle.smembers(KEYS.workers) == {b"w1"}
    assert oracle.smembers(KEYS.worker_queues("w1")) == {KEYS.queue_key("default").encode()}
    assert json.loads(oracle.get(KEYS.heartbeat("w1")) or b"")["processed"] == 3
    assert 0 < oracle.pttl(KEYS.heartbeat("w1")) <= 30_000


async def test_a_worker_never_recovers_its_own_jobs_even_with_its_heartbeat_expired(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Regression: a recovery call sent just before Redis froze ran after the thaw, when the
    sender's own heartbeat had expired, and requeued the job it had finished (its ack, on
    another connection, ran after and found nothing): a needless duplicate."""
    await Producer(conn).enqueue("t", 1)
    worker = Fetcher(conn, "w1", ["default"], heartbeat_ttl=0.1)
    await worker.register()
    assert len(await worker.fetch(1)) == 1
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("w1")) == 0, what="heartbeat expiry")
    assert await worker.recover_dead_workers() == 0
    assert oracle.llen(KEYS.processing("w1", KEYS.queue_key("default"))) == 1
    assert oracle.smembers(KEYS.workers) == {b"w1"}
    # Anyone else takes it for dead, as it must.
    assert await Fetcher(conn, "other", ["default"]).recover_dead_workers() == 1
    assert oracle.llen(KEYS.queue_key("default")) == 1


async def test_two_concurrent_recoverers_never_duplicate_a_job(
    redis_server: RedisServer, conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn).enqueue_many(
        [JobSpec("t", (i,), queue=("a", "b")[i % 2]) for i in range(400)]
    )
    for n in range(20):
        dead = Fetcher(conn, f"dead-{n}", ["a", "b"], heartbeat_ttl=0.1)
        await dead.register()
        assert len(await dead.fetch(20)) == 20
    await wait_until(
        lambda: all(oracle.exists(KEYS.heartbeat(f"dead-{n}")) == 0 for n in range(20)),
        what="all heartbeats expired",
    )
    conns = [RedisConnection.from_url(redis_server.url, retry=FAST_RETRY) for _ in range(2)]
    recoverers = [Fetcher(c, f"recoverer-{i}", ["a"]) for i, c in enumerate(conns)]
    async with asyncio.TaskGroup() as tg:
        counts = [tg.create_task(r.recover_dead_workers()) for r in recoverers]
    assert sum(c.result() for c in counts) == 400
    back = queued_ids(oracle, "a") + queued_ids(oracle, "b")
    assert sorted(back) == sorted(ids)  # each exactly once
    assert oracle.keys(f"{KEYS.processing_prefix}*") == []
    for c in conns:
        await c.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from steadfetch.fetcher import Fetcher, RedisConnection

    async def main() -> None:
        conn = RedisConnection.from_url(sys.argv[1])
        fetcher = Fetcher(conn, "child", ["default"], heartbeat_ttl=0.5)
        await fetcher.register()
        jobs = await fetcher.fetch(5)
        print(" ".join(j.id for j in jobs), flush=True)
        await asyncio.Event().wait()  # holds the jobs until SIGKILLed

    asyncio.run(main())
    """
)


async def test_sigkill_of_a_worker_process_holding_jobs_then_recovery(
    redis_server: RedisServer, conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn).enqueue_many([JobSpec("t", (i,)) for i in range(10)])
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_server.url, stdout=asyncio.subprocess.PIPE, cwd=REPO
    )
    try:
        assert child.stdout is not None
        held = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().split()
        assert held == ids[:5]
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert oracle.llen(KEYS.processing("child", KEYS.queue_key("default"))) == 5
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("child")) == 0, what="heartbeat expiry")
    survivor = Fetcher(conn, "survivor", ["default"])
    assert await survivor.recover_dead_workers() == 5
    assert queued_ids(oracle) == ids
    jobs = await survivor.fetch(10)
    assert [j.id for j in jobs] == ids


async def test_a_custom_key_prefix_is_used_everywhere(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    keys = Keys(prefix="app")
    await Producer(conn, keys=keys).enqueue("t", job_id="j1")
    dying = Fetcher(conn, "dying", ["default"], keys=keys, heartbeat_ttl=0.1)
    await dying.register()
    assert [j.id for j in await dying.fetch(1)] == ["j1"]
    assert oracle.llen("app:processing:dying:app:queue:default") == 1
    await wait_until(lambda: oracle.exists("app:worker:dying") == 0, what="heartbeat expiry")
    assert await Fetcher(conn, "other", ["default"], keys=keys).recover_dead_workers() == 1
    assert oracle.llen("app:queue:default") == 1
    assert not oracle.keys("steadfetch:*")


async def test_a_dead_workers_jobs_whose_queue_key_holds_another_type_are_dead_lettered(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """One broken key must not stop recovery (nor every worker that runs it): the jobs that
    cannot go back to their queue go to the dead-letter list with the reason; the other queue's
    jobs go back as usual, and recovery goes on working."""
    producer = Producer(conn)
    broken = await producer.enqueue_many([JobSpec("t", (i,), queue="broken") for i in range(2)])
    fine = await producer.enqueue_many([JobSpec("t", (i,), queue="fine") for i in range(2)])
    dying = Fetcher(conn, "dying", ["broken", "fine"], heartbeat_ttl=1.5)
    await dying.register()
    assert len(await dying.fetch(4)) == 4
    oracle.set(KEYS.queue_key("broken"), "not a list")  # someone overwrote the queue key
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("dying")) == 0, what="heartbeat expiry")
    alive = Fetcher(conn, "alive", ["fine"])
    assert await alive.recover_dead_workers() == 4
    entries = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert sorted(json.loads(e["raw"])["id"] for e in entries) == sorted(broken)
    assert all("holds a string, not a list" in e["reason"] for e in entries)
    assert all("dead worker dying" in e["reason"] for e in entries)
    assert queued_ids(oracle, "fine") == fine
    assert oracle.smembers(KEYS.workers) == set()
    assert await alive.recover_dead_workers() == 0
