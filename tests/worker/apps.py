"""Handlers the worker tests run inside the real ``steadfetch`` binary.

Each execution is appended as one JSON line to the file named by ``STEADFETCH_TEST_RECORD``
(O_APPEND writes of one short line are atomic), so a test can count executions across worker
restarts and SIGKILLs, and see how many jobs ran at once (measured here, inside the handler).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from worker import App

app = App("tests")
_running = 0


def record(event: str, **fields: Any) -> None:
    path = os.environ.get("STEADFETCH_TEST_RECORD")
    if not path:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **fields}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task
async def work(token: str, seconds: float = 0.0) -> None:
    """Record start (with how many run at once) and end; sleep ``seconds`` in between."""
    global _running
    _running += 1
    try:
        record("start", token=token, running=_running)
        if seconds:
            await asyncio.sleep(seconds)
        record("end", token=token)
    finally:
        _running -= 1


@app.task
def sync_work(token: str, seconds: float = 0.0) -> None:
    record("start", token=token)
    time.sleep(seconds)
    record("end", token=token)


@app.task
async def fail(token: str) -> None:
    record("start", token=token)
    raise ValueError(f"failing on purpose: {token}")


@app.task
async def fail_chained(token: str) -> None:
    """Fails with a chained exception: its traceback holds ``token`` twice (a long log line,
    although the error message itself is capped)."""
    try:
        raise LookupError(token)
    except LookupError as exc:
        raise ValueError(token) from exc


@app.task(timeout=0.5)
async def hang(token: str) -> None:
    record("start", token=token)
    await asyncio.sleep(3600)


@app.task(timeout=0.5)
def sync_hang(token: str) -> None:
    """A sync handler that outlives its timeout (threads cannot be cancelled)."""
    record("start", token=token)
    time.sleep(3600)


@app.task
async def stubborn(token: str) -> None:
    """Catches its first CancelledError and awaits again (user code the worker must still stop)."""
    record("start", token=token)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        record("swallowed", token=token)
        await asyncio.sleep(3600)
