"""Fuzz: random and adversarial payloads, attempt counters and argument values through the real
Worker (in-process) and a real Redis: fetch → run → nack → promote → fetch. The worker must
survive, and every job must end done or dead-lettered: counted, nothing lost (issue 9 §1).

Seeded (``STEADFETCH_FUZZ_SEED`` overrides) and bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Keys, RedisConnection, RetryPolicy
from steadfetch.fetcher.deadletter import raw_of
from steadfetch.worker import App
from steadfetch.worker.config import WorkerConfig
from steadfetch.worker.worker import Worker

KEYS = Keys()
QUEUES = ("fuzz", "other")
SEED = int(os.environ.get("STEADFETCH_FUZZ_SEED", "20261129"))
JOBS = 400
TIME_BOUND = 20.0
MARK = re.compile(rb"mark-(\d+)-")
ALWAYS_FAILING = ("unprintable", "exits", "cancels", "interrupts", "loud")

done: Counter[int] = Counter()
failures: Counter[int] = Counter()
app = App("fuzz")


def mark_of(value: Any) -> int | None:
    match = MARK.search(value if isinstance(value, bytes) else str(value).encode())
    return int(match.group(1)) if match else None


@app.task
async def ok(*args: Any, **kwargs: Any) -> None:
    done[mark_of(args[0]) or -1] += 1


@app.task
async def flaky(*args: Any, **kwargs: Any) -> None:
    """Fails the first ``args[1]`` times it runs for one mark, then succeeds."""
    mark = mark_of(args[0]) or -1
    if failures[mark] < int(args[1]):
        failures[mark] += 1
        raise ValueError(f"flaky {mark} failing on purpose")
    done[mark] += 1


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@app.task
def unprintable(*args: Any, **kwargs: Any) -> None:
    raise Unprintable()


@app.task
async def exits(*args: Any, **kwargs: Any) -> None:
    sys.exit(3)


@app.task
async def cancels(*args: Any, **kwargs: Any) -> None:
    """Raises CancelledError though nobody cancelled it: must not end its runner."""
    raise asyncio.CancelledError


@app.task
async def interrupts(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


@app.task
def loud(*args: Any, **kwargs: Any) -> None:
    raise ValueError("x" * 1_000_000)


@app.task
async def strict(mark: str) -> None:
    done[mark_of(mark) or -1] += 1


def adversarial_value(rng: random.Random, depth: int = 0) -> bytes:
    """One JSON-ish argument as raw text: valid, out of range, or malformed."""
    choices: list[Callable[[], bytes]] = [
        lambda: str(rng.randint(-(10**40), 10**40)).encode(),
        lambda: b"1e999",
        lambda: b"-1e999",
        lambda: b"NaN",
        lambda: b"12345678901234567890123456789",
        lambda: b'"' + b"x" * rng.choice([10, 5000, 150_000]) + b'"',
        lambda: b'"\\ud800"',
        lambda: b'"\xff\xfe"',  # invalid UTF-8
        lambda: b"[" * 120 + b"]" * 120,
        lambda: b"[" * 50 + b"1" + b"]" * 50,
        lambda: b'{"nested": ' + adversarial_value(rng, depth + 1) + b"}" if depth < 3 else b"null",
        lambda: b"0.1",
        lambda: b'"ok"',
        lambda: b"true",
    ]
    return rng.choice(choices)()


TASKS = ("ok", "ok", "flaky", "flaky", "strict", "nope", *ALWAYS_FAILING)


def payload(rng: random.Random, mark: int) -> bytes:
    token = f'"mark-{mark}-"'.encode()
    task = rng.choice(TASKS)
    args = [token]
    if task == "flaky":
        args.append(str(rng.choice([0, 1, 2])).encode())
    if task != "strict" or rng.random() < 0.5:
        args += [adversarial_value(rng) for _ in range(rng.randint(0, 2))]
    attempt = rng.choice([b"1", b"1", b"2", b"1025", b"1000000000000000000000000000000", b"0",
                          b"-1", b'"x"', b"1.5"])  # fmt: skip
    max_attempts = rng.choice([b"1", b"3", b"3", b"5000", b"10000000000000000000000000000000",
                               b"0"])  # fmt: skip
    if task in ALWAYS_FAILING:  # a bounded number of attempts, or they never settle
        max_attempts = rng.choice([b"1", b"3", b"0"])
    shape = rng.random()
    if shape < 0.04:
        return b"[" + token + b"]"  # a JSON array, not an object
    if shape < 0.08:
        return b'{"id": ' + token + b', "task": "ok", "args": {"a": 1}}'  # args not a list
    if shape < 0.10:
        return b"\x80\x81 not json " + token
    if shape < 0.12:
        return b'{"class": "ok", "args": [' + token + b"]}"  # Resque format
    body = (
        b'{"id": ' + token + b', "task": "' + task.encode() + b'", "args": ['
        + b", ".join(args) + b'], "attempt": ' + attempt
        + b', "max_attempts": ' + max_attempts + b', "queue": "steadfetch:queue:fuzz"}'
    )  # fmt: skip
    return body


@pytest.fixture
def oracle(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)


async def test_fuzzed_payloads_never_stop_the_worker_and_every_job_ends_done_or_dead(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    rng = random.Random(SEED)
    done.clear()
    failures.clear()
    payloads = {mark: payload(rng, mark) for mark in range(1, JOBS + 1)}  # 0 is falsy
    # A few due scheduled entries too, some naming a queue key of the wrong type.
    broken = KEYS.queue_key("broken")
    oracle.set(broken, "a string, not a list")
    scheduled = {}
    for mark in range(JOBS + 1, JOBS + 21):
        queue = rng.choice([KEYS.queue_key("other"), broken, KEYS.workers, ""])
        body = {"id": f"mark-{mark}-", "task": "ok", "args": [f"mark-{mark}-"], "queue": queue}
        scheduled[mark] = json.dumps(body).encode()
    items = list(payloads.values())
    oracle.rpush(KEYS.queue_key("fuzz"), *items[: JOBS // 2])
    oracle.zadd(KEYS.scheduled, {raw: 0 for raw in scheduled.values()})

    config = WorkerConfig(
        app="fuzz", queues=QUEUES, concurrency=8, block_timeout=0.1, scheduler_interval=0.05,
        heartbeat_interval=0.5, recovery_interval=1.0, grace_period=5.0,
    )  # fmt: skip
    conn = RedisConnection.from_url(redis_server.url, retry=RetryPolicy(base=0.02, cap=0.2))
    worker = Worker(app, config, conn, worker_id="fuzzer")
    worker.fetcher.retry_base, worker.fetcher.retry_cap = 0.01, 0.05  # fast retries
    total = JOBS + len(scheduled)
    started = time.monotonic()

    def settled() -> tuple[set[int], set[int]]:
        dead: set[int] = set()
        for item in oracle.lrange(KEYS.dead, 0, -1):
            mark = mark_of(raw_of(json.loads(item)) or b"")
            assert mark is not None, item
            dead.add(mark)
        return set(done), dead

    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(worker.run())
        await asyncio.wait_for(worker.started.wait(), 10)
        oracle.rpush(KEYS.queue_key("fuzz"), *items[JOBS // 2 :])
        while True:
            assert not running.done(), f"the worker stopped: {running}"
            finished, dead = settled()
            if len(finished | dead) >= total:
                break
            if time.monotonic() - started > TIME_BOUND:
                missing = sorted(set(range(1, total + 1)) - finished - dead)[:10]
                raise AssertionError(
                    f"after {TIME_BOUND} s: {len(finished)} done, {len(dead)} dead of {total}; "
                    f"missing e.g. {[payloads.get(m, scheduled.get(m)) for m in missing[:3]]}"
                )
            await asyncio.sleep(0.05)
        worker.shutdown.request("test over")
        assert await running == 0
    finished, dead = settled()
    assert finished | dead == set(range(1, total + 1))
    assert not finished & dead, sorted(finished & dead)[:10]
    assert all(count == 1 for count in done.values())
    assert oracle.zcard(KEYS.scheduled) == 0
    for queue in QUEUES:
        assert oracle.llen(KEYS.queue_key(queue)) == 0
        assert oracle.llen(KEYS.processing("fuzzer", KEYS.queue_key(queue))) == 0
    assert oracle.get(broken) == b"a string, not a list"
    longest = max(len(item) for item in oracle.lrange(KEYS.dead, 0, -1))
    assert longest < 400_000  # a 1 MB exception message is not copied into entries whole
