"""An App for tests/worker/test_cli.py: a handler that stops the worker's event loop under it,
an error no part of the worker can contain (the unexpected-error path: traceback, exit 1)."""

from __future__ import annotations

import asyncio

from steadfetch.worker import App

app = App("loop-stopping")


@app.task
async def stop_the_loop() -> None:
    asyncio.get_running_loop().stop()
