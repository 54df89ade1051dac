"""Shared by the peer-side scripts; stdlib only, since each runs in its peer's own virtualenv.

Each ``<peer>_app.py`` defines two tasks through its peer's API: ``noop()`` (the drain and
latency runs) and ``recorded(job_id)`` (the restart run: it appends ``job_id time`` to
``$BENCH_RECORD`` so lost and twice-run jobs can be counted outside Redis). Run as a script it
hands :func:`main` three coroutines and serves three commands, each answering JSON lines:

- ``enqueue N``: N no-op jobs with ids ``b0..b{N-1}`` through the peer's own API; prints
  ``{"seconds": s, "count": N}``;
- ``feed RATE SECONDS OUT``: ``recorded`` jobs at RATE/s for SECONDS at most, or until the file
  ``OUT.stop`` exists (the harness ends a feed that way); a failed enqueue (Redis is
  being restarted) is retried after 50 ms with the same id until it is accepted; every accepted id
  is written to OUT with the time its (last) enqueue call began; prints
  ``{"accepted": n, "errors": n}``;
- ``check N``: prints ``{"ready": true}``, then for every line on stdin checks which of ``b0..``
  are not yet done according to the peer's own bookkeeping (only those still missing after the
  previous check) and prints ``{"t": unix time the check began, "missing": n, "sample": [...],
  "failed": n}``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable

CHUNK = 1000  # ids handed to a peer's bulk call (or to 100 concurrent single calls) at once
Submit = Callable[[list[str]], Awaitable[None]]
Missing = Callable[[list[str]], Awaitable[tuple[list[str], int]]]  # (missing ids, failed)


def record(job_id: str) -> None:
    """Append ``job_id time`` to $BENCH_RECORD: one write on an O_APPEND fd, atomic for a line."""
    path = os.environ.get("BENCH_RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{job_id} {time.time():.6f}\n".encode())
        finally:
            os.close(fd)


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


async def gather_chunked(call: Callable[[str], Awaitable[object]], ids: list[str]) -> None:
    """For peers without a bulk call: 100 single calls in flight at a time."""
    for start in range(0, len(ids), 100):
        await asyncio.gather(*(call(i) for i in ids[start : start + 100]))


async def _enqueue(n: int, submit: Submit) -> None:
    ids = [f"b{i}" for i in range(n)]
    began = time.perf_counter()
    for start in range(0, n, CHUNK):
        await submit(ids[start : start + CHUNK])
    emit({"seconds": time.perf_counter() - began, "count": n})


def stopped(path: str) -> bool:
    """One stat per job fed (at most a few hundred per second): cheaper than a thread."""
    return os.path.exists(path)


async def _feed(rate: float, seconds: float, out: str, submit_recorded: Submit) -> None:
    accepted = errors = 0
    began, stop = time.monotonic(), out + ".stop"
    with open(out, "a", buffering=1) as sink:  # noqa: ASYNC230 -- one line per job, by design
        while (elapsed := time.monotonic() - began) < seconds and not stopped(stop):
            job_id = f"r{accepted}"
            asked = time.time()
            try:
                await submit_recorded([job_id])
            except Exception:  # noqa: BLE001 -- whatever the peer raises while Redis is down
                errors += 1
                await asyncio.sleep(0.05)
                continue
            sink.write(f"{job_id} {asked:.6f}\n")
            accepted += 1
            ahead = accepted / rate - elapsed
            if ahead > 0:
                await asyncio.sleep(ahead)
    emit({"accepted": accepted, "errors": errors})


def by_record(states: Callable[[list[str]], object]) -> Missing:
    """A done check for peers that keep a record per job. ``states(ids)`` (sync or async) gives,
    per id, True (done), False (failed) or None (no record yet), in CHUNK-sized lookups."""
    failed = [0]

    async def missing_of(ids: list[str]) -> tuple[list[str], int]:
        missing = []
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            found = states(part)
            if inspect.isawaitable(found):
                found = await found
            for job_id, state in zip(part, found, strict=True):  # type: ignore[call-overload]
                if state is None:
                    missing.append(job_id)
                elif state is False:
                    failed[0] += 1  # failed ids leave ``pending``: each is counted once
        return missing, failed[0]

    return missing_of


_total = [0]  # N of the running ``check`` (for peers whose bookkeeping is a counter)


def by_count(counts: Callable[[], Awaitable[tuple[int, int]]]) -> Missing:
    """A done check for peers whose own bookkeeping is a processed counter, not a record per job:
    ``counts()`` returns (processed, failed); the missing are reported as the last ids, by count.
    """

    async def missing_of(ids: list[str]) -> tuple[list[str], int]:
        processed, failed = await counts()
        left = max(0, _total[0] - processed)
        return ids[len(ids) - left :] if left else [], failed

    return missing_of


async def _check(n: int, missing_of: Missing) -> None:
    _total[0] = n
    pending = [f"b{i}" for i in range(n)]
    emit({"ready": True})
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        began = time.time()
        pending, failed = await missing_of(pending)
        emit({"t": began, "missing": len(pending), "sample": pending[:5], "failed": failed})


async def main(submit: Submit, submit_recorded: Submit, missing_of: Missing,
               close: Callable[[], Awaitable[None]] | None = None) -> None:  # fmt: skip
    command, *rest = sys.argv[1:]
    try:
        if command == "enqueue":
            await _enqueue(int(rest[0]), submit)
        elif command == "feed":
            await _feed(float(rest[0]), float(rest[1]), rest[2], submit_recorded)
        elif command == "check":
            await _check(int(rest[0]), missing_of)
        else:
            sys.exit(f"unknown command {command!r}")
    finally:
        if close is not None:
            await close()


def wrap(fn: Callable[[list[str]], object]) -> Submit:
    """A sync peer's call as the coroutine :func:`main` expects."""

    async def call(ids: list[str]) -> None:
        fn(ids)

    return call
