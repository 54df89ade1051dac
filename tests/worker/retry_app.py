"""An App for tests/worker/test_retries.py: one task without a retry policy, one with its own."""

from __future__ import annotations

from steadfetch.worker import App
from tests.worker.apps import record

app = App("retries")


@app.task
async def fail(token: str) -> None:
    record("start", token=token)
    raise ValueError(f"failing on purpose: {token}")


@app.task(max_attempts=3, retry_base=500.0, retry_cap=500.0)
async def fail_with_task_policy(token: str) -> None:
    record("start", token=token)
    raise ValueError(f"failing on purpose: {token}")
