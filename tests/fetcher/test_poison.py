"""Poison pills (issue 9 §1): no payload, counter, argument value or wrong-type key that belongs
to one job can stop a worker. Each observation of the issue, against a real Redis."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import pytest
import redis

from steadfetch.fetcher import Fetcher, JobSpec, Keys, Producer, RedisConnection, WrongTypeError
from steadfetch.fetcher.codec import MAX_NESTING, decode, encode
from steadfetch.fetcher.errors import DecodeError
from steadfetch.fetcher.scheduling import MAX_WAIT, job_backoff

KEYS = Keys()
QUEUE = KEYS.queue_key("default")


def payload(**fields: Any) -> bytes:
    return json.dumps({"id": "p", "task": "t", "queue": QUEUE, **fields}).encode()


def dead_entries(oracle: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(item) for item in oracle.lrange(KEYS.dead, 0, -1)]


@pytest.mark.parametrize("attempt", [1, 2, 30, 1024, 1025, 1026, 5000, 10**30, 0, -3])
def test_job_backoff_never_overflows(attempt: int) -> None:
    wait = job_backoff(attempt, 1.0, 300.0)
    assert 0 < wait <= 300.0
    assert wait == (300.0 if attempt > 10 else min(300.0, 2.0 ** max(attempt - 1, 0)))


@pytest.mark.parametrize(
    ("base", "cap"), [(1.0, math.inf), (math.nan, 300.0), (1.0, math.nan), (-1.0, 5.0)]
)
def test_job_backoff_is_finite_whatever_the_settings(base: float, cap: float) -> None:
    for attempt in (1, 2, 1025, 10**30):
        wait = job_backoff(attempt, base, cap)
        assert 0.0 <= wait <= MAX_WAIT


async def test_a_failing_job_with_a_huge_attempt_counter_is_retried_at_the_cap(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Observed: attempt ~1025 made ``base * 2 ** (attempt - 1)`` raise OverflowError."""
    oracle.rpush(QUEUE, payload(attempt=1025, max_attempts=5000))
    fetcher = Fetcher(conn, "w1", ["default"], retry_base=1.0, retry_cap=300.0)
    (job,) = await fetcher.fetch(1)
    before = time.time()
    assert await fetcher.nack(job, "E: boom") == "retried"
    ((member, score),) = oracle.zrange(KEYS.scheduled, 0, -1, withscores=True)
    assert before + 299 <= score <= time.time() + 300
    assert json.loads(member)["attempt"] == 1026


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (payload(args=[1]).replace(b"[1]", b"[1e999]"), "1e999 is out of range"),
        (payload(args=[1]).replace(b"[1]", b"[-1e999]"), "-1e999 is out of range"),
        (payload(args=[1]).replace(b"[1]", b"[12345678901234567890123, 1e999]"), "out of range"),
        (payload(args=[1]).replace(b"[1]", b'["\\ud800"]'), "lone surrogate"),
        (payload(args=[1]).replace(b"[1]", b"[" * 150 + b"]" * 150), "nested more than"),
    ],
)
async def test_a_payload_the_worker_could_not_reencode_is_dead_lettered_at_fetch(
    conn: RedisConnection, oracle: redis.Redis, raw: bytes, reason: str
) -> None:
    """Observed: 1e999 was read as infinity and the retry's re-encode raised."""
    good = payload(id="good")
    oracle.rpush(QUEUE, raw, good)
    fetcher = Fetcher(conn, "w1", ["default"])
    assert [j.id for j in await fetcher.fetch(5)] == ["good"]
    (entry,) = dead_entries(oracle)
    assert entry["raw"].encode() == raw and reason in entry["reason"]


def test_decode_and_encode_agree_on_random_values() -> None:
    """Whatever encode writes, decode reads back equal; whatever decode accepts, encode can
    write again (the retry path)."""
    rng = random.Random(9)
    specials: list[Any] = [
        math.inf, -math.inf, math.nan, 10**40, -(2**64), 1e308, 5e-324, -0.0, "\ud800", "é😀",
        "\x00", "", [], {}, None, True, 2**63, "x" * 1000,
    ]  # fmt: skip

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > MAX_NESTING + 5 or roll < 0.3:
            return rng.choice(specials)
        if roll < 0.5:
            return rng.randint(-(2**70), 2**70)
        if roll < 0.6:
            return rng.uniform(-1e308, 1e308)
        if roll < 0.8 or depth > 3:
            inner = value(depth + 1)
            return [inner] if rng.random() < 0.5 else {"k": inner}
        return [value(depth + 1) for _ in range(3)]

    for _ in range(2000):
        args = [value(1) for _ in range(rng.randint(0, 3))]
        try:
            raw = encode(
                job_id="j", task="t", args=args, kwargs={}, queue_key=QUEUE,
                attempt=rng.choice([1, 1025, 10**30]), max_attempts=10**31,
                enqueued_at=1.0, format="steadfetch",
            )  # fmt: skip
        except ValueError:
            continue
        job = decode(raw, QUEUE, KEYS)
        again = encode(
            job_id=job.id, task=job.task, args=job.args, kwargs=job.kwargs, queue_key=QUEUE,
            attempt=job.attempt + 1, max_attempts=job.max_attempts,
            enqueued_at=job.enqueued_at, format=job.format,
        )  # fmt: skip
        assert decode(again, QUEUE, KEYS).args == job.args


async def test_promote_dead_letters_an_entry_whose_queue_key_has_the_wrong_type(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Observed: one such due entry made promotion fail with WRONGTYPE and every worker exit 2."""
    broken = KEYS.queue_key("broken")
    oracle.set(broken, "not a list")
    bad = json.dumps({"id": "bad", "task": "t", "queue": broken}).encode()
    outside = json.dumps({"id": "outside", "task": "t", "queue": KEYS.workers}).encode()
    good = payload(id="good")
    oracle.zadd(KEYS.scheduled, {bad: 1, good: 2, outside: 3})
    fetcher = Fetcher(conn, "w1", ["default"])
    assert await fetcher.promote_due() == 1
    assert oracle.lrange(QUEUE, 0, -1) == [good]
    assert oracle.zcard(KEYS.scheduled) == 0
    assert oracle.get(broken) == b"not a list" and oracle.type(KEYS.workers) == b"none"
    entries = {e["raw"]: e for e in dead_entries(oracle)}
    assert "holds a string, not a list" in entries[bad.decode()]["reason"]
    assert "not a queue key" in entries[outside.decode()]["reason"]


async def test_promote_still_wakes_nothing_but_promotes_when_the_wake_list_is_broken(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    oracle.set(KEYS.wake(QUEUE), "not a list")
    oracle.zadd(KEYS.scheduled, {payload(id="good"): 1})
    assert await Fetcher(conn, "w1", ["default"]).promote_due() == 1
    assert oracle.llen(QUEUE) == 1


@pytest.mark.parametrize("delay", [None, 0.0, 60.0])
async def test_the_producer_refuses_a_queue_key_of_the_wrong_type_and_writes_nothing(
    conn: RedisConnection, oracle: redis.Redis, delay: float | None
) -> None:
    """Observed: ``steadfetch enqueue --delay`` accepted a job for such a queue (exit 0)."""
    broken = KEYS.queue_key("broken")
    oracle.set(broken, "not a list")
    specs = [JobSpec("t", queue="default"), JobSpec("t", queue="broken", delay=delay)]
    with pytest.raises(WrongTypeError, match=rf"{broken} holds a string.*nothing was written"):
        await Producer(conn).enqueue_many(specs)
    assert oracle.llen(QUEUE) == 0 and oracle.zcard(KEYS.scheduled) == 0
    assert oracle.exists(KEYS.wake(QUEUE)) == 0


async def test_the_producer_refuses_non_finite_delays(conn: RedisConnection) -> None:
    for delay in (math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            await Producer(conn).enqueue("t", delay=delay)


@pytest.mark.parametrize("mode", ["reliable", "fast"])
async def test_requeue_into_a_queue_key_of_the_wrong_type_dead_letters_those_jobs(
    conn: RedisConnection, oracle: redis.Redis, mode: str
) -> None:
    await Producer(conn).enqueue_many([JobSpec("t", (i,), queue=q) for i in range(2) for q in "ab"])
    fetcher = Fetcher(conn, "w1", ["a", "b"], mode=mode)  # type: ignore[arg-type]
    jobs = await fetcher.fetch(4)
    oracle.set(KEYS.queue_key("a"), "not a list")
    assert await fetcher.requeue(jobs) == 2
    assert oracle.llen(KEYS.queue_key("b")) == 2
    reasons = [e["reason"] for e in dead_entries(oracle)]
    assert len(reasons) == 2 and all("could not be requeued" in r for r in reasons)
    assert fetcher.in_flight == 0
    assert oracle.llen(KEYS.processing("w1", KEYS.queue_key("a"))) == 0


async def test_give_back_at_shutdown_dead_letters_what_cannot_go_back(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    await Producer(conn).enqueue_many([JobSpec("t", (i,), queue=q) for i in range(3) for q in "ab"])
    fetcher = Fetcher(conn, "w1", ["a", "b"])
    await fetcher.fetch(6)
    oracle.set(KEYS.queue_key("a"), "not a list")
    assert await fetcher.requeue_all_processing() == 3
    assert oracle.llen(KEYS.queue_key("b")) == 3
    assert len(dead_entries(oracle)) == 3
    assert oracle.llen(KEYS.processing("w1", KEYS.queue_key("a"))) == 0


async def test_an_unexpected_decoder_failure_dead_letters_that_payload(
    conn: RedisConnection, oracle: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in decoding one payload is that payload's failure: it is dead-lettered, with the
    reason, and the fetch goes on with the others."""
    import steadfetch.fetcher.fetch as fetch_module

    real = fetch_module.decode

    def buggy(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"boom" in raw:
            raise KeyError("a decoder bug")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(fetch_module, "decode", buggy)
    oracle.rpush(QUEUE, payload(id="boom"), payload(id="good"))
    fetcher = Fetcher(conn, "w1", ["default"])
    assert [j.id for j in await fetcher.fetch(5)] == ["good"]
    (entry,) = dead_entries(oracle)
    assert "KeyError" in entry["reason"] and json.loads(entry["raw"])["id"] == "boom"


def test_decode_error_carries_the_raw_bytes_for_every_new_rule() -> None:
    raw = b'{"task": "t", "args": [1e999]}'
    with pytest.raises(DecodeError) as info:
        decode(raw, QUEUE, KEYS)
    assert info.value.raw == raw
