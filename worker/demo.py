"""The demo handlers (``steadfetch run steadfetch.worker.demo:app`` works too).

A mix that shows what the worker does: quick async jobs, sync jobs in the thread pool, jobs
that fail now and then (retried with backoff, dead-lettered after the last attempt).
"""

from __future__ import annotations

import asyncio
import random
import time

from steadfetch.worker.app import App

app = App("demo")


@app.task
async def greet(name: str) -> str:
    await asyncio.sleep(random.uniform(0.005, 0.05))
    return f"hello {name}"


@app.task(timeout=5)
def resize(width: int, height: int) -> int:
    """A sync handler: runs in the worker's bounded thread pool."""
    time.sleep(random.uniform(0.01, 0.05))
    return width * height


@app.task
async def flaky(n: int) -> None:
    """Fails about one time in five (watch the retries in the log); job 0 always fails, so
    every demo shows a job retried with backoff and then dead-lettered."""
    await asyncio.sleep(0.01)
    if n == 0 or random.random() < 0.2:
        raise RuntimeError(f"flaky job {n} failed (on purpose, to show retries)")
