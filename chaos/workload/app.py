"""The handler app the worker under test runs: ``steadfetch run steadfetch.chaos.workload.app:app``.

``record(job_id, work=0.02, slow=0.0, pad="")`` writes a ``start`` line, works for ``work`` seconds
(async, so a job timeout can cancel it), and writes an ``ok`` line. With ``slow`` > 0 the *first*
execution of that job sleeps ``slow`` seconds instead (it is meant to outlive its timeout); later
attempts are quick, so a retry can complete it.

Lines go to the file named by ``STEADFETCH_CHAOS_RECORD`` as JSON, one ``os.write`` on an
``O_APPEND`` descriptor each: whole lines, never interleaved between concurrent jobs or worker
processes, and untouched by any fault between the worker and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from steadfetch.worker.app import App

RECORD_ENV = "STEADFETCH_CHAOS_RECORD"
app = App("chaos")
_fd: int | None = None


def _record(event: str, job_id: str) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ[RECORD_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = {
        "event": event,
        "job_id": job_id,
        "worker_id": os.environ.get("STEADFETCH_WORKER_ID", f"pid-{os.getpid()}"),
        "pid": os.getpid(),
        "time": time.time(),
    }
    os.write(_fd, (json.dumps(line) + "\n").encode())


def _first_execution(job_id: str) -> bool:
    """True exactly once per job id, across processes (an O_EXCL marker file)."""
    marker = Path(os.environ[RECORD_ENV]).with_name(f"slow-{job_id}")
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


@app.task
async def record(job_id: str, work: float = 0.02, slow: float = 0.0, pad: str = "") -> None:
    """``pad`` only makes the payload large (output-buffer scenarios); it is not used."""
    _record("start", job_id)
    await asyncio.sleep(slow if slow > 0 and _first_execution(job_id) else work)
    _record("ok", job_id)
