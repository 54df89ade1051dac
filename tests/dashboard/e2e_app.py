"""The App the end-to-end test's worker runs: ``steadfetch run tests.dashboard.e2e_app:app``."""

from __future__ import annotations

import asyncio

from steadfetch.worker.app import App

app = App("dashboard-e2e")


@app.task
async def tick(seconds: float = 0.01) -> None:
    await asyncio.sleep(seconds)
