"""Sync handlers in a bounded thread pool, with a count of threads still busy.

Threads cannot be cancelled: a timed-out or interrupted sync handler keeps its thread until it
returns. :attr:`SyncRunner.busy` lets the CLI tell whether the process may exit normally or must
leave such threads behind (interpreter shutdown would otherwise wait for them forever).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class SyncRunner:
    _all_busy = 0  # over every instance: threads inside a handler right now
    _all_lock = threading.Lock()

    @classmethod
    def abandoned(cls) -> int:
        """Handler threads still running (after the worker stopped: they were abandoned)."""
        return cls._all_busy

    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="steadfetch-job")
        self.busy = 0

    def __repr__(self) -> str:
        return f"<SyncRunner busy={self.busy}>"

    def _call(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        with SyncRunner._all_lock:
            self.busy += 1
            SyncRunner._all_busy += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with SyncRunner._all_lock:
                self.busy -= 1
                SyncRunner._all_busy -= 1

    async def run(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn, args, kwargs)

    def close(self) -> None:
        """Drop queued calls; do not wait for running ones (they may never return)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
