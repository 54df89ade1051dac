"""Reliable and fast fetch against a real Redis: priority, batch bounds, blocking and wake-up,
bad payloads, settling (ack/nack/dead-letter/requeue) and the scheduled set."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import ConfigurationError, Fetcher, JobSpec, Keys, Producer, RedisConnection
from steadfetch.fetcher.scripts import ACK
from tests.polling import wait_until

KEYS = Keys()


def processing(worker: str, queue: str) -> str:
    return KEYS.processing(worker, KEYS.queue_key(queue))


async def blocked_on(oracle: redis.Redis, command: str) -> None:
    await wait_until(
        lambda: any(c.get("cmd") == command for c in oracle.client_list()),
        what=f"a client blocked in {command}",
    )


async def test_priority_order_and_processing_lists(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn)
    low = [await producer.enqueue("t", i, queue="default") for i in range(3)]
    high = [await producer.enqueue("t", i, queue="high") for i in range(2)]
    fetcher = Fetcher(conn, "w1", ["high", "default"])
    jobs = await fetcher.fetch(10)
    assert [j.id for j in jobs] == high + low
    assert [j.queue for j in jobs] == ["high"] * 2 + ["default"] * 3
    assert oracle.lrange(processing("w1", "high"), 0, -1) == [j.raw for j in jobs[:2]]
    assert oracle.llen(processing("w1", "default")) == 3
    assert fetcher.in_flight == 5
    await fetcher.ack_many(jobs)
    assert fetcher.in_flight == 0
    assert oracle.llen(processing("w1", "high")) == oracle.llen(processing("w1", "default")) == 0


@pytest.mark.parametrize(
    ("lists", "acks"),
    [
        ({"p": "abcde"}, {"p": "abc"}),  # the head in fetch order: one LTRIM
        ({"p": "abc"}, {"p": "abc"}),
        ({"p": "abcde"}, {"p": "bac"}),  # the head out of order
        ({"p": "abcde"}, {"p": "ac"}),  # starts at the head, then a gap
        ({"p": "abcde"}, {"p": "cd"}),
        ({"p": "aba"}, {"p": "ab"}),  # duplicate payloads: the first occurrence goes
        ({"p": "aba"}, {"p": "aa"}),
        ({"p": "baa"}, {"p": "a"}),
        ({"p": "ab"}, {"p": "ax"}),  # x was recovered by someone else
        ({"p": "a"}, {"p": "ab"}),  # the head matches, the list is shorter
        ({"p": ""}, {"p": "ab"}),
        ({"p": "abc", "q": "xyz"}, {"p": "ab", "q": "zy"}),
    ],
)
def test_the_ack_script_removes_the_first_occurrence_of_each_payload(
    oracle: redis.Redis, lists: dict[str, str], acks: dict[str, str]
) -> None:
    expected = {key: list(items) for key, items in lists.items()}
    removed = 0
    for key, items in acks.items():
        for item in items:
            if item in expected[key]:
                expected[key].remove(item)
                removed += 1
    for key, items in lists.items():
        if items:
            oracle.rpush(key, *(f"payload-{c}" for c in items))
    args: list[Any] = []
    for items in acks.values():
        args += [len(items), *(f"payload-{c}" for c in items)]
    # KEYS[1]/ARGV[1]: the lease and its token ('' = unfenced: see tests/fetcher/test_fencing.py)
    assert oracle.eval(ACK.source, len(acks) + 1, "lease", *acks, "", *args) == removed
    for key, items in expected.items():
        assert oracle.lrange(key, 0, -1) == [f"payload-{c}".encode() for c in items]


@pytest.mark.parametrize("mode", ["reliable", "fast"])
async def test_a_batch_never_exceeds_the_capacity_asked_for(
    conn: RedisConnection, oracle: redis.Redis, mode: str
) -> None:
    producer = Producer(conn)
    ids = await producer.enqueue_many(
        [JobSpec("t", (i,), queue=("a", "b", "c")[i % 3]) for i in range(50)]
    )
    fetcher = Fetcher(conn, "w1", ["a", "b", "c"], mode=mode, block_timeout=0.2)  # type: ignore[arg-type]
    seen: list[str] = []
    for size in [1, 7, 20, 3, 30]:
        batch = await fetcher.fetch(size)
        assert 0 < len(batch) <= size
        seen += [j.id for j in batch]
    assert sorted(seen) == sorted(ids)
    assert await fetcher.fetch(5) == []
    with pytest.raises(ValueError, match="max_jobs must be >= 1"):
        await fetcher.fetch(0)
    in_processing = sum(oracle.llen(processing("w1", q)) for q in "abc")
    assert in_processing == (50 if mode == "reliable" else 0)


async def test_idle_fetch_blocks_for_one_block_timeout_then_returns_nothing(
    conn: RedisConnection,
) -> None:
    fetcher = Fetcher(conn, "w1", ["high", "default"], block_timeout=0.3)
    started = time.monotonic()
    assert await fetcher.fetch(5) == []
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 0.3 + 2.0


@pytest.mark.parametrize(
    ("queues", "mode"),
    [(["high", "default"], "reliable"), (["default"], "reliable"), (["high", "default"], "fast")],
    ids=["wake-list", "blmove", "fast-blpop"],
)
async def test_an_idle_fetcher_wakes_when_a_job_lands(
    conn: RedisConnection, oracle: redis.Redis, queues: list[str], mode: str
) -> None:
    fetcher = Fetcher(conn, "w1", queues, block_timeout=5.0, mode=mode)  # type: ignore[arg-type]
    producer = Producer(RedisConnection.from_url(f"redis://127.0.0.1:{conn.address.port}/0"))
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(fetcher.fetch(10))
        await blocked_on(oracle, "blpop" if len(queues) > 1 else "blmove")
        started = time.monotonic()
        job_id = await producer.enqueue("t", queue="default")
        jobs = await waiting
        latency = time.monotonic() - started
    assert [j.id for j in jobs] == [job_id]
    print(f"wake-up latency ({mode} {'/'.join(queues)}): {latency * 1000:.1f} ms")
    assert latency < 0.2  # generous: it is a few ms; the block timeout is 5 s
    await producer.conn.close()


async def test_a_resque_format_queue_without_wake_tokens_is_drained(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    fetcher = Fetcher(conn, "w1", ["resque:priority", "resque:stats"], block_timeout=0.4)
    payloads = [
        json.dumps({"class": "ReportJob", "args": ["svc", {"0": {"app_id": str(i)}}]}).encode()
        for i in range(3)
    ]
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(fetcher.fetch(10))
        await blocked_on(oracle, "blpop")
        started = time.monotonic()
        oracle.sadd("resque:queues", "stats")  # exactly what a Resque producer does
        oracle.rpush("resque:queue:stats", *payloads)
        jobs = await waiting
    assert time.monotonic() - started < 0.4 + 2.0
    assert [j.raw for j in jobs] == payloads
    assert {(j.task, j.format, j.queue) for j in jobs} == {("ReportJob", "resque", "resque:stats")}
    assert jobs[0].args == ("svc", {"0": {"app_id": "0"}})
    await fetcher.ack_many(jobs)
    assert oracle.llen("resque:queue:stats") == oracle.llen(processing("w1", "resque:stats")) == 0


async def test_resque_round_trip_through_the_producer(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    job_id = await Producer(conn).enqueue("Mailer", "a@b", 3, queue="mail", format="resque")
    assert oracle.smembers("resque:queues") == {b"mail"}
    body = json.loads(oracle.lindex("resque:queue:mail", 0) or b"")
    assert (body["class"], body["args"]) == ("Mailer", ["a@b", 3])
    [job] = await Fetcher(conn, "w1", ["resque:mail"]).fetch(1)
    assert (job.id, job.task, job.args, job.format) == (job_id, "Mailer", ("a@b", 3), "resque")


BAD_PAYLOADS = {
    "invalid-utf8": b"\xff\xfe\xfd",
    "invalid-json": b"{nope",
    "wrong-shape": b"[1,2,3]",
    "no-task": b'{"args": []}',
    "too-large": json.dumps({"task": "t", "args": ["x" * 300]}).encode(),
}


@pytest.mark.parametrize("mode", ["reliable", "fast"])
async def test_undecodable_payloads_are_dead_lettered_with_bytes_and_reason(
    conn: RedisConnection, oracle: redis.Redis, mode: str
) -> None:
    good = json.dumps({"id": "good", "task": "t"}).encode()
    oracle.rpush(KEYS.queue_key("default"), *BAD_PAYLOADS.values(), good)
    fetcher = Fetcher(conn, "w1", ["default"], mode=mode, max_payload_bytes=200)  # type: ignore[arg-type]
    jobs = await fetcher.fetch(10)
    assert [j.id for j in jobs] == ["good"]
    entries = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert len(entries) == len(BAD_PAYLOADS)
    by_raw = {}
    for entry in entries:
        stored = base64.b64decode(entry["raw_b64"]) if "raw_b64" in entry else entry["raw"].encode()
        by_raw[stored] = entry
        assert entry["queue"] == KEYS.queue_key("default")
        assert entry["reason"].startswith("undecodable payload: ")
        assert entry["worker_id"] == "w1"
    # The oversized one never left Redis (dead-lettered by the fetch script): order may differ.
    reasons = [by_raw[raw]["reason"] for raw in BAD_PAYLOADS.values()]
    assert "invalid UTF-8" in reasons[0] and "invalid JSON" in reasons[1]
    assert "wrong shape" in reasons[2] and "wrong shape" in reasons[3]
    assert "exceeds the limit of 200" in reasons[4]
    expected_processing = [good] if mode == "reliable" else []
    assert oracle.lrange(processing("w1", "default"), 0, -1) == expected_processing


async def test_a_payload_nested_too_deeply_is_dead_lettered_not_a_crash(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    deep = b'{"task": "t", "args": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    good = json.dumps({"id": "good", "task": "t"}).encode()
    oracle.rpush(KEYS.queue_key("default"), deep, good)
    fetcher = Fetcher(conn, "w1", ["default"])
    assert [j.id for j in await fetcher.fetch(10)] == ["good"]
    [entry] = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert entry["raw"].encode() == deep
    assert entry["reason"] == "undecodable payload: invalid JSON: nested too deeply"


async def test_a_batch_of_only_bad_payloads_does_not_end_the_fetch(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.rpush(KEYS.queue_key("default"), b"bad1", b"bad2", json.dumps({"task": "t"}).encode())
    jobs = await Fetcher(conn, "w1", ["default"]).fetch(2)
    assert [j.task for j in jobs] == ["t"]
    assert oracle.llen(KEYS.dead) == 2


async def test_fast_mode_pops_destructively(conn: RedisConnection, oracle: redis.Redis) -> None:
    await Producer(conn).enqueue_many([JobSpec("t", (i,), queue="q") for i in range(4)])
    fetcher = Fetcher(conn, "w1", ["q"], mode="fast")
    jobs = await fetcher.fetch(3)
    assert [j.args for j in jobs] == [(0,), (1,), (2,)]
    assert oracle.llen(KEYS.queue_key("q")) == 1
    assert oracle.exists(processing("w1", "q")) == 0
    await fetcher.ack(jobs[0])  # a no-op, not an error
    assert fetcher.in_flight == 0


async def test_nack_retries_with_backoff_then_dead_letters(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn)
    job_id = await producer.enqueue("flaky", 1, queue="default", max_attempts=2)
    fetcher = Fetcher(conn, "w1", ["default"], retry_base=30.0)
    [job] = await fetcher.fetch(1)
    before = time.time()
    assert await fetcher.nack(job, ValueError("boom")) == "retried"
    scheduled: Any = oracle.zrange(KEYS.scheduled, 0, -1, withscores=True)
    [(member, score)] = scheduled
    assert json.loads(member)["attempt"] == 2
    assert before + 29 < score < time.time() + 31  # retry_base * 2**0
    assert oracle.llen(processing("w1", "default")) == 0
    assert await fetcher.promote_due() == 0  # not due yet
    oracle.zadd(KEYS.scheduled, {member: time.time() - 1})
    assert await fetcher.promote_due() == 1
    [again] = await fetcher.fetch(1)
    assert (again.id, again.attempt) == (job_id, 2)
    outcome = await fetcher.nack(again, RuntimeError("still broken"), "Traceback ...\nline 3")
    assert outcome == "dead"
    [entry] = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert entry["error"] == "RuntimeError: still broken"
    assert entry["traceback"] == "Traceback ...\nline 3"
    assert (entry["attempts"], entry["reason"]) == (2, "failed after 2 attempt(s)")
    assert json.loads(entry["raw"])["id"] == job_id
    assert oracle.zcard(KEYS.scheduled) == 0 and fetcher.in_flight == 0


async def test_delayed_enqueue_is_promoted_with_a_wake_up(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    producer = Producer(conn)
    job_id = await producer.enqueue("later", queue="high", eta=time.time() - 0.1)
    future = await producer.enqueue("much-later", queue="high", delay=3600)
    assert oracle.llen(KEYS.queue_key("high")) == 0 and oracle.zcard(KEYS.scheduled) == 2
    fetcher = Fetcher(conn, "w1", ["high", "default"], block_timeout=5.0)
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(fetcher.fetch(5))
        await blocked_on(oracle, "blpop")
        assert await fetcher.promote_due() == 1
        jobs = await waiting
    assert [j.id for j in jobs] == [job_id]
    members: Any = oracle.zrange(KEYS.scheduled, 0, -1)
    assert [json.loads(m)["id"] for m in members] == [future]


async def test_a_scheduled_member_without_a_queue_is_dead_lettered(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.zadd(KEYS.scheduled, {b'{"task":"t"}': 1, b"garbage": 2})
    assert await Fetcher(conn, "w1", ["q"]).promote_due() == 0
    entries = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert [e["raw"] for e in entries] == ['{"task":"t"}', "garbage"]
    assert {e["reason"] for e in entries} == {"scheduled payload names no queue"}


async def test_requeue_returns_jobs_to_the_head_in_order(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn).enqueue_many([JobSpec("t", (i,)) for i in range(5)])
    fetcher = Fetcher(conn, "w1", ["default"])
    jobs = await fetcher.fetch(3)
    assert await fetcher.requeue(jobs) == 3
    assert [json.loads(r)["id"] for r in oracle.lrange(KEYS.queue_key("default"), 0, -1)] == ids
    assert fetcher.in_flight == 0 and oracle.llen(processing("w1", "default")) == 0


async def test_requeue_all_processing_and_unregister(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    ids = await Producer(conn).enqueue_many(
        [JobSpec("t", (i,), queue=("high", "default")[i % 2]) for i in range(6)]
    )
    fetcher = Fetcher(conn, "w1", ["high", "default"])
    await fetcher.register()
    assert len(await fetcher.fetch(6)) == 6
    assert await fetcher.requeue_all_processing() == 6
    queued = [
        json.loads(r)["id"]
        for q in ("high", "default")
        for r in oracle.lrange(KEYS.queue_key(q), 0, -1)
    ]
    assert sorted(queued) == sorted(ids)
    await fetcher.unregister()
    assert oracle.smembers(KEYS.workers) == set()
    assert oracle.exists(KEYS.heartbeat("w1"), KEYS.worker_queues("w1")) == 0


async def test_jobs_left_by_an_earlier_run_are_adopted_first(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    left = json.dumps({"id": "left-over", "task": "t"}).encode()
    oracle.rpush(processing("w1", "default"), left)
    await Producer(conn).enqueue("t", queue="default", job_id="fresh")
    fetcher = Fetcher(conn, "w1", ["default"])
    assert [j.id for j in await fetcher.fetch(1)] == ["left-over"]
    assert [j.id for j in await fetcher.fetch(5)] == ["fresh"]
    assert oracle.llen(processing("w1", "default")) == 2


async def test_settling_a_job_someone_else_recovered_changes_nothing(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    await Producer(conn).enqueue("t", queue="default", max_attempts=1)
    fetcher = Fetcher(conn, "w1", ["default"])
    [job] = await fetcher.fetch(1)
    oracle.delete(processing("w1", "default"))  # as if recovered after our heartbeat expired
    oracle.rpush(KEYS.queue_key("default"), job.raw)
    assert await fetcher.nack(job, "E: x") == "dead"
    assert oracle.llen(KEYS.dead) == 0  # not dead-lettered twice over: the job lives in the queue
    assert oracle.llen(KEYS.queue_key("default")) == 1


async def test_a_block_longer_than_the_read_timeout_is_no_outage(redis_server: RedisServer) -> None:
    conn = RedisConnection.from_url(redis_server.url, read_timeout=0.3)
    for queues in (["a", "b"], ["a"]):
        fetcher = Fetcher(conn, "w1", queues, block_timeout=1.0)
        assert await fetcher.fetch(1) == []
    assert conn.stats.attempts == 0 and conn.stats.outages == 0
    await conn.close()


@pytest.mark.parametrize("queues", [["high", "default"], ["default"]], ids=["wake-list", "blmove"])
async def test_cancelling_a_blocked_fetch_propagates_and_loses_nothing(
    conn: RedisConnection, oracle: redis.Redis, queues: list[str]
) -> None:
    fetcher = Fetcher(conn, "w1", queues, block_timeout=5.0)
    waiting = asyncio.create_task(fetcher.fetch(5))
    await blocked_on(oracle, "blpop" if len(queues) > 1 else "blmove")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await Producer(conn).enqueue("t", queue="default", job_id="after-cancel")
    assert [j.id for j in await fetcher.fetch(5)] == ["after-cancel"]


async def test_one_fetch_at_a_time(conn: RedisConnection, oracle: redis.Redis) -> None:
    fetcher = Fetcher(conn, "w1", ["a", "b"], block_timeout=5.0)
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(fetcher.fetch(1))
        await blocked_on(oracle, "blpop")
        with pytest.raises(RuntimeError, match="already running"):
            await fetcher.fetch(1)
        first.cancel()


async def test_a_failure_after_the_take_loses_nothing_and_the_jobs_are_adopted(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    good = json.dumps({"id": "good", "task": "t"}).encode()
    oracle.rpush(KEYS.queue_key("default"), good, b"bad payload")
    oracle.set(KEYS.dead, "a string, so dead-lettering fails with WRONGTYPE")
    fetcher = Fetcher(conn, "w1", ["default"])
    with pytest.raises(ConfigurationError, match="WRONGTYPE"):
        await fetcher.fetch(5)
    assert oracle.lrange(processing("w1", "default"), 0, -1) == [good, b"bad payload"]
    assert fetcher.in_flight == 0  # the good job was never handed out
    oracle.delete(KEYS.dead)
    assert [j.id for j in await fetcher.fetch(5)] == ["good"]
    assert oracle.lrange(processing("w1", "default"), 0, -1) == [good]
    assert json.loads(oracle.lindex(KEYS.dead, 0) or b"")["raw"] == "bad payload"


async def test_a_processing_list_of_the_wrong_type_is_refused_before_anything_moves(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    fetcher = Fetcher(conn, "w1", ["default"], block_timeout=0.1)
    assert await fetcher.fetch(1) == []  # past the start-up adoption: the next call is the script
    oracle.rpush(KEYS.queue_key("default"), b'{"task": "t"}')
    oracle.set(processing("w1", "default"), "not a list")
    with pytest.raises(ConfigurationError, match=r"WRONGTYPE processing list .* holds a string"):
        await fetcher.fetch(1)
    assert oracle.llen(KEYS.queue_key("default")) == 1


async def test_fast_mode_nack_and_requeue(conn: RedisConnection, oracle: redis.Redis) -> None:
    await Producer(conn).enqueue_many([JobSpec("t", (i,), max_attempts=2) for i in range(3)])
    fetcher = Fetcher(conn, "w1", ["default"], mode="fast", retry_base=60)
    first, second, third = await fetcher.fetch(3)
    assert await fetcher.nack(first, "E: x") == "retried"
    assert oracle.zcard(KEYS.scheduled) == 1
    await fetcher.dead_letter(second, "poison")
    assert json.loads(oracle.lindex(KEYS.dead, 0) or b"")["reason"] == "poison"
    assert await fetcher.requeue([third]) == 1
    assert oracle.lrange(KEYS.queue_key("default"), 0, -1) == [third.raw]


@pytest.mark.parametrize(
    ("worker_id", "queues", "options", "message"),
    [
        ("", ["a"], {}, "worker_id must be a non-empty string"),
        ("w", [], {}, "queues must be distinct non-empty names"),
        ("w", ["a", "a"], {}, "queues must be distinct non-empty names"),
        ("w", ["a", ""], {}, "queues must be distinct non-empty names"),
        ("w", ["a"], {"mode": "slow"}, "mode must be 'reliable' or 'fast'"),
        ("w", ["a"], {"block_timeout": 0}, r"block_timeout must be > 0 \(0 would block forever\)"),
    ],
)
async def test_a_fetcher_refuses_arguments_it_cannot_work_with(
    conn: RedisConnection, worker_id: str, queues: list[str], options: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Fetcher(conn, worker_id, queues, **options)
