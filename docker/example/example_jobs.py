"""The example app the image runs by default (``steadfetch run example_jobs:app``).

Each job logs one line naming the worker that ran it, so ``docker-compose up`` shows jobs
flowing and ``--scale worker=3`` shows three workers sharing one queue.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from steadfetch import App

app = App("example")
log = logging.getLogger("example")
HOST = socket.gethostname()


@app.task(timeout=30)
async def process_order(order_id: int, work_seconds: float = 0.1) -> None:
    """Pretend to process an order: wait ``work_seconds``, then say so."""
    await asyncio.sleep(work_seconds)
    log.info("order %s processed on %s", order_id, HOST)
