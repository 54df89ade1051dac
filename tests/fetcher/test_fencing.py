"""Ownership of a worker id: leases, fencing of zombies, twins refused, recovery named once.

A *zombie* is a worker that was presumed dead (its heartbeat expired, its jobs were recovered)
and then carries on; a *twin* is a second process with the same worker id. Everything here runs
against a real Redis; the oracle stands in for "another process" where a test needs one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time

import pytest
import redis

from steadfetch.fetcher import ConfigurationError, Fetcher, Job, Keys, Producer, RedisConnection
from tests.polling import wait_until

KEYS = Keys()
DEFAULT = KEYS.queue_key("default")


def processing(worker_id: str) -> str:
    return KEYS.processing(worker_id, DEFAULT)


def token_of(oracle: redis.Redis, worker_id: str) -> bytes | None:
    token: bytes | None = oracle.hget(KEYS.lease(worker_id), "token")  # type: ignore[assignment]
    return token


async def zombie_with_one_job(
    conn: RedisConnection, oracle: redis.Redis, *, ttl: float = 0.3
) -> tuple[Fetcher, Job, Fetcher]:
    """``w1`` fetched one job, then its heartbeat expired and ``w2`` recovered it."""
    await Producer(conn).enqueue("t", 1, max_attempts=3)
    zombie = Fetcher(conn, "w1", ["default"], heartbeat_ttl=ttl)
    await zombie.register()
    [job] = await zombie.fetch(1)
    await wait_until(lambda: oracle.exists(KEYS.heartbeat("w1")) == 0, what="heartbeat expiry")
    other = Fetcher(conn, "w2", ["default"], heartbeat_ttl=60)
    await other.register()
    assert await other.recover_dead_workers() == 1
    assert token_of(oracle, "w1") is None  # recovery deleted the lease
    return zombie, job, other


async def test_a_zombies_ack_touches_nothing_and_it_rejoins_with_a_fresh_lease(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    zombie, job, other = await zombie_with_one_job(conn, oracle)
    [again] = await other.fetch(1)
    assert again.raw == job.raw and oracle.llen(processing("w2")) == 1
    old_token = zombie._registration.token
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        await zombie.ack(job)
    assert oracle.llen(processing("w2")) == 1  # the other worker's copy is untouched
    assert zombie.ownership.presumed_dead == 1
    assert zombie.ownership.late_settles == 1
    assert zombie.in_flight == 0
    new_token = token_of(oracle, "w1")
    assert new_token is not None and new_token.decode() != old_token
    assert oracle.smembers(KEYS.workers) == {b"w1", b"w2"}  # rejoined, said so
    [line] = [r.getMessage() for r in caplog.records if "presumed dead" in r.getMessage()]
    assert "1 job(s) it holds were recovered elsewhere" in line


async def test_a_zombies_retry_and_dead_letter_are_fenced_too(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    zombie, job, _other = await zombie_with_one_job(conn, oracle)
    assert await zombie.nack(job, "E: late") == "retried"
    assert oracle.zcard(KEYS.scheduled) == 0  # no second copy scheduled
    assert oracle.llen(DEFAULT) == 1  # the recovered job waits in its queue, once
    assert zombie.ownership.late_settles == 1


async def test_a_zombies_heartbeat_does_not_re_register_it_silently(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    zombie, job, _other = await zombie_with_one_job(conn, oracle)
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        await zombie.heartbeat({"worker_id": "w1"}, ttl=30)
    assert any("was presumed dead" in r.getMessage() for r in caplog.records)
    assert zombie.ownership.presumed_dead == 1
    await zombie.ack(job)  # after the rejoin: known stale, nothing is sent
    assert zombie.ownership.late_settles == 1
    assert oracle.llen(DEFAULT) == 1


@pytest.mark.parametrize("first", ["old", "new"])
async def test_a_recovered_job_fetched_again_with_identical_bytes_is_settled_once(
    conn: RedisConnection, oracle: redis.Redis, first: str
) -> None:
    """The zombie rejoins and fetches its recovered job again (same bytes, same list): the late
    settle of the old copy and the settle of the new one remove exactly one payload between
    them, never the new copy's before it is done."""
    zombie, old, other = await zombie_with_one_job(conn, oracle)
    await zombie.heartbeat({"worker_id": "w1"}, ttl=30)  # finds out, rejoins
    [new] = await zombie.fetch(1)
    assert new.raw == old.raw and oracle.llen(processing("w1")) == 1
    one, two = (old, new) if first == "old" else (new, old)
    await zombie.ack(one)
    assert oracle.llen(processing("w1")) == 1  # one of the two was a late settle: no-op
    await zombie.ack(two)
    assert oracle.llen(processing("w1")) == 0
    assert zombie.ownership.late_settles == 1 and zombie.in_flight == 0
    assert await other.fetch(1) == [] or True  # nothing left anywhere else
    assert oracle.llen(DEFAULT) == 0 and oracle.llen(processing("w2")) == 0


async def test_a_lapsed_lease_that_nobody_recovered_is_taken_back_quietly(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await Producer(conn).enqueue("t", 1)
    worker = Fetcher(conn, "w1", ["default"], heartbeat_ttl=0.2)
    await worker.register()
    [job] = await worker.fetch(1)
    await wait_until(lambda: oracle.exists(KEYS.lease("w1")) == 0, what="lease expiry")
    token = token_of(oracle, "w1")
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        await worker.heartbeat({"worker_id": "w1"}, ttl=30)
    assert any("nobody had recovered its jobs" in r.getMessage() for r in caplog.records)
    assert token is None and token_of(oracle, "w1") == worker._registration.token.encode()  # type: ignore[union-attr]
    await worker.ack(job)
    assert oracle.llen(processing("w1")) == 0
    assert worker.ownership.presumed_dead == 0 and worker.ownership.late_settles == 0


async def test_a_settle_fenced_by_a_lapsed_lease_takes_it_back_and_goes_through(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Found by the chaos scenario latency-up-3w: under 1 s command latency the lease lapsed
    (nobody recovered the worker), an ack was fenced, the heartbeat took the lease back with the
    same token, and the settle's rejoin then took its own renewed lease for a twin: exit 2."""
    await Producer(conn).enqueue_many([{"task": "t", "args": (i,)} for i in range(2)])
    worker = Fetcher(conn, "w1", ["default"], heartbeat_ttl=0.2)
    await worker.register()
    first, second = await worker.fetch(2)
    token = worker._registration.token
    assert token is not None
    await wait_until(lambda: oracle.exists(KEYS.lease("w1")) == 0, what="lease expiry")
    await worker.ack(first)  # fenced (no lease), then taken back as lapsed: the ack goes through
    await wait_until(lambda: oracle.exists(KEYS.lease("w1")) == 0, what="lease expiry")
    await worker.heartbeat({"worker_id": "w1"}, ttl=30)  # lapsed: taken back by the heartbeat
    await worker._registration.lease_lost(token)  # ... before a fenced settle looks: a no-op
    await worker.ack(second)
    assert oracle.llen(processing("w1")) == 0
    assert worker._registration.token == token and token_of(oracle, "w1") == token.encode()
    assert worker.ownership.presumed_dead == 0 and worker.ownership.late_settles == 0


def fake_lease(
    oracle: redis.Redis, worker_id: str, *, hostname: str, pid: int, ttl_ms: int
) -> None:
    oracle.hset(
        KEYS.lease(worker_id),
        mapping={"token": "theirs", "hostname": hostname, "pid": pid, "since": time.time(),
                 "renewed_at": time.time()},
    )  # fmt: skip
    oracle.pexpire(KEYS.lease(worker_id), ttl_ms)
    oracle.sadd(KEYS.workers, worker_id)
    oracle.set(KEYS.heartbeat(worker_id), json.dumps({"worker_id": worker_id}), px=ttl_ms)


async def test_a_twin_on_the_same_host_is_refused_at_once_naming_the_holder(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    holder = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        fake_lease(oracle, "w1", hostname=socket.gethostname(), pid=holder.pid, ttl_ms=60_000)
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as caught:
            await Fetcher(conn, "w1", ["default"]).register()
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        await holder.wait()
    message = str(caught.value)
    assert f"worker id w1 is already held by a live process (host {socket.gethostname()} " in (
        message
    )
    assert f"pid {holder.pid} since 20" in message
    assert token_of(oracle, "w1") == b"theirs"  # untouched


async def test_a_restart_on_the_same_host_after_a_crash_takes_over_at_once(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    fake_lease(oracle, "w1", hostname=socket.gethostname(), pid=gone.pid, ttl_ms=60_000)
    oracle.rpush(processing("w1"), json.dumps({"id": "left", "task": "t"}))
    fetcher = Fetcher(conn, "w1", ["default"])
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        await fetcher.register()
    assert any(
        "which is no longer running; taking it over" in r.getMessage() for r in caplog.records
    )
    assert token_of(oracle, "w1") == fetcher._registration.token.encode()  # type: ignore[union-attr]
    assert [j.id for j in await fetcher.fetch(5)] == ["left"]  # adopted


async def test_a_holder_on_another_host_that_keeps_renewing_is_a_twin(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    fake_lease(oracle, "w1", hostname="elsewhere", pid=1, ttl_ms=1500)

    async def renew() -> None:
        while True:
            await asyncio.sleep(0.2)
            oracle.hset(KEYS.lease("w1"), "renewed_at", time.time())
            oracle.pexpire(KEYS.lease("w1"), 1500)

    renewing = asyncio.create_task(renew())
    try:
        with pytest.raises(ConfigurationError, match="host elsewhere pid 1"):
            await asyncio.wait_for(Fetcher(conn, "w1", ["default"]).register(), 10)
    finally:
        renewing.cancel()


@pytest.mark.parametrize("where", ["another host", "this host, this pid"])
async def test_a_holder_that_crashed_is_replaced_after_its_ttl(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """Another host's pid cannot be checked; nor can our own pid (a container restarted in place
    and a twin container with the same hostname look alike): wait for one renewal or expiry."""
    if where == "another host":
        fake_lease(oracle, "w1", hostname="elsewhere", pid=1, ttl_ms=800)
    else:
        fake_lease(oracle, "w1", hostname=socket.gethostname(), pid=os.getpid(), ttl_ms=800)
    fetcher = Fetcher(conn, "w1", ["default"])
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        await asyncio.wait_for(fetcher.register(), 10)
    lines = [r.getMessage() for r in caplog.records]
    assert any("(not a process this host can see): waiting up" in line for line in lines)
    assert any("expired without renewal; taking the id over" in line for line in lines)
    assert token_of(oracle, "w1") == fetcher._registration.token.encode()  # type: ignore[union-attr]


async def test_a_zombie_whose_id_another_process_now_holds_stops_and_touches_nothing(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    zombie, job, _other = await zombie_with_one_job(conn, oracle)
    fake_lease(oracle, "w1", hostname="elsewhere", pid=1, ttl_ms=60_000)
    oracle.rpush(processing("w1"), job.raw)  # the twin's adopted copy
    with pytest.raises(ConfigurationError, match="now held by another process"):
        await zombie.ack(job)
    with pytest.raises(ConfigurationError, match="now held by another process"):
        await zombie.heartbeat({"worker_id": "w1"}, ttl=30)
    await zombie.unregister()
    assert oracle.llen(processing("w1")) == 1
    assert token_of(oracle, "w1") == b"theirs"
    assert b"w1" in oracle.smembers(KEYS.workers)


async def test_recovery_logs_one_line_naming_each_dead_worker(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await Producer(conn).enqueue_many([{"task": "t", "args": (i,)} for i in range(3)])
    for name, n in (("dead-a", 2), ("dead-b", 1)):
        dying = Fetcher(conn, name, ["default"], heartbeat_ttl=0.2)
        await dying.register()
        assert len(await dying.fetch(n)) == n
    await wait_until(
        lambda: oracle.exists(KEYS.heartbeat("dead-a"), KEYS.heartbeat("dead-b")) == 0,
        what="heartbeat expiry",
    )
    survivor = Fetcher(conn, "survivor", ["default"])
    with caplog.at_level(logging.INFO):
        assert await survivor.recover_dead_workers() == 3
    lines = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert lines == [
        "recovered 3 job(s) of 2 dead worker(s) (heartbeat expired): dead-a (2 jobs), "
        "dead-b (1 job); by worker survivor"
    ]
    assert survivor.ownership.recovered_jobs == 3
    assert survivor.ownership.dead_workers == 2


async def test_an_unregistered_fetcher_settles_unfenced(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Library use without register() (tests, scripts) keeps working: no lease, no fence."""
    await Producer(conn).enqueue("t", 1)
    fetcher = Fetcher(conn, "w1", ["default"])
    [job] = await fetcher.fetch(1)
    await fetcher.ack(job)
    assert oracle.llen(processing("w1")) == 0
    assert os.getpid() > 0


async def test_what_a_zombie_fetched_before_it_found_out_is_swept_back_if_it_dies(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The fetch scripts are not fenced: a zombie that wakes up can fetch into its own lists
    while it is out of the registry. If it dies before its heartbeat rejoins, no registry entry
    leads recovery there; the sweep finds the list by SCAN and gives the job back."""
    zombie, _job, other = await zombie_with_one_job(conn, oracle)
    [recovered] = await other.fetch(1)
    await other.ack(recovered)
    await Producer(conn).enqueue("t", 2, job_id="fetched-by-the-zombie")
    [stranded] = await zombie.fetch(1)  # ... and the zombie dies here
    assert stranded.id == "fetched-by-the-zombie" and oracle.llen(processing("w1")) == 1
    assert await other.recover_dead_workers() == 0  # the registry does not know w1 any more
    live = Fetcher(conn, "live", ["default"], heartbeat_ttl=60)  # registered: never swept
    await live.register()
    await Producer(conn).enqueue("t", 3, job_id="held-by-a-live-worker")
    assert [j.id for j in await live.fetch(1)] == ["held-by-a-live-worker"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        assert await other.recover_dead_workers(sweep=True) == 1
    assert [json.loads(r)["id"] for r in oracle.lrange(DEFAULT, 0, -1)] == ["fetched-by-the-zombie"]
    assert oracle.llen(processing("live")) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "recovered 1 job(s) from processing lists of unregistered worker(s) (presumed dead "
        "before they fetched them): w1 (1 job); by worker w2"
    ]


async def test_the_sweep_dead_letters_orphans_whose_queue_key_holds_another_type(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """As recovery does: one broken queue key must not stop the sweep (nor every worker)."""
    zombie, _job, other = await zombie_with_one_job(conn, oracle)
    [recovered] = await other.fetch(1)
    await other.ack(recovered)
    await Producer(conn).enqueue("t", 2, job_id="stranded")
    assert [j.id for j in await zombie.fetch(1)] == ["stranded"]  # ... and the zombie dies
    oracle.delete(DEFAULT)
    oracle.set(DEFAULT, "not a list")  # and someone overwrites the queue key
    assert await other.recover_dead_workers(sweep=True) == 1
    [entry] = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert json.loads(entry["raw"])["id"] == "stranded"
    assert "orphaned by worker w1" in entry["reason"] and "holds a string" in entry["reason"]
    assert oracle.llen(processing("w1")) == 0


async def test_a_job_in_hand_that_was_recovered_elsewhere_is_not_started_by_the_zombie(
    conn: RedisConnection, oracle: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by freeze-2w in docker: a worker frozen past its TTL with a job fetched but not yet
    started woke up and started it, although another worker had recovered and run it. The
    lease is now confirmed before such a job starts, and the job is forgotten, not run."""
    zombie, job, other = await zombie_with_one_job(conn, oracle)
    assert zombie.in_doubt()  # its lease is older than its TTL
    with caplog.at_level(logging.WARNING, "fetcher.registry"):
        assert not await zombie.still_held(job)
    assert zombie.ownership.presumed_dead == 1 and zombie.in_flight == 0
    assert any("was presumed dead" in r.getMessage() for r in caplog.records)
    assert oracle.llen(DEFAULT) == 1  # the recovered copy waits for the other worker, once
    assert not zombie.in_doubt()  # rejoined with a fresh lease, nothing stale left
    [again] = await other.fetch(1)
    assert again.raw == job.raw


async def test_a_job_in_hand_starts_under_a_fresh_lease_or_one_that_lapsed_unrecovered(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    await Producer(conn).enqueue_many([{"task": "t", "args": (i,)} for i in range(2)])
    fresh = Fetcher(conn, "w1", ["default"], heartbeat_ttl=60)
    await fresh.register()
    [first] = await fresh.fetch(1)
    assert not fresh.in_doubt()  # the hot path: no round trip before a job starts
    lapsed = Fetcher(conn, "w2", ["default"], heartbeat_ttl=0.2)
    await lapsed.register()
    [second] = await lapsed.fetch(1)
    await wait_until(lambda: oracle.exists(KEYS.lease("w2")) == 0, what="lease expiry")
    assert lapsed.in_doubt()
    assert await lapsed.still_held(second)  # nobody recovered it: the lease is taken back
    assert lapsed.ownership.presumed_dead == 0 and token_of(oracle, "w2") is not None
    assert oracle.llen(processing("w2")) == 1 and lapsed.in_flight == 1
    await asyncio.gather(fresh.ack(first), lapsed.ack(second))
    assert oracle.llen(processing("w1")) == oracle.llen(processing("w2")) == 0
