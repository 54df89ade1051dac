"""Sync handlers in a bounded thread pool that keeps its promised capacity.

Threads cannot be cancelled: a sync handler that outlives its timeout (or is interrupted at
shutdown) keeps its thread until it returns, while its runner moves on to the next job. Such a
thread is *abandoned*. With a pool of exactly ``size`` threads, ``size`` stuck handlers would
leave every later sync job waiting in the executor while its own timeout runs: the capacity
``--concurrency`` promises would be gone, silently.

So the pool has ``size`` threads for running handlers plus ``spare`` more that replace abandoned
ones: runners are at most ``size``, so as long as at most ``spare`` threads are abandoned, every
runner finds a thread at once. Past that the capacity shrinks, and :meth:`SyncRunner.health`
says so (the worker's ``/healthz`` turns unhealthy: only a restart frees stuck threads).
:meth:`SyncRunner.abandoned` lets the CLI tell whether the process may exit normally or must
leave such threads behind (interpreter shutdown would otherwise wait for them forever).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class _Call:
    """One handler call; ``abandoned`` once its caller stopped waiting (under the pool lock)."""

    __slots__ = ("abandoned", "done", "started")

    def __init__(self) -> None:
        self.abandoned = False
        self.started = False
        self.done = False


class GeneratorExitInThread(Exception):
    """A sync handler raised GeneratorExit. Delivered as is, it would be thrown into the awaiting
    coroutines, where ``throw(GeneratorExit)`` closes each one instead of raising in it: the
    job's failure handling would not run and the worker would crash ("coroutine ignored
    GeneratorExit"). Raised from the original, so the traceback keeps it."""


class SyncRunner:
    _all_busy = 0  # over every instance: threads inside a handler right now
    _all_lock = threading.Lock()

    @classmethod
    def abandoned(cls) -> int:
        """Handler threads still running (after the worker stopped: they were abandoned)."""
        return cls._all_busy

    def __init__(self, size: int, spare: int | None = None) -> None:
        self.size = size
        #: Abandoned threads replaced without eating into ``size`` (default: ``size``).
        self.spare = size if spare is None else spare
        self._pool = ThreadPoolExecutor(size + self.spare, thread_name_prefix="steadfetch-job")
        self.busy = 0
        #: Threads still inside a handler whose caller gave up on it (timeout or cancel).
        self.stuck = 0

    def __repr__(self) -> str:
        return f"<SyncRunner busy={self.busy} stuck={self.stuck}/{self.spare} size={self.size}>"

    def _call(
        self, call: _Call, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        with SyncRunner._all_lock:
            if call.abandoned:  # given up on before it started: do not run it at all
                return None
            call.started = True
            self.busy += 1
            SyncRunner._all_busy += 1
        try:
            return fn(*args, **kwargs)
        except GeneratorExit as exc:
            raise GeneratorExitInThread(f"the handler raised GeneratorExit {exc}".strip()) from exc
        finally:
            with SyncRunner._all_lock:
                self.busy -= 1
                SyncRunner._all_busy -= 1
                call.done = True
                if call.abandoned:
                    self.stuck -= 1

    async def run(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        loop = asyncio.get_running_loop()
        call = _Call()
        try:
            return await loop.run_in_executor(self._pool, self._call, call, fn, args, kwargs)
        except asyncio.CancelledError:
            with SyncRunner._all_lock:
                call.abandoned = True
                if call.started and not call.done:
                    self.stuck += 1
            raise

    def health(self) -> tuple[bool, str]:
        """Unhealthy once more threads are stuck than there are spares: capacity is shrinking."""
        stuck = self.stuck
        if stuck > self.spare:
            return False, (
                f"{stuck} sync handler threads are stuck past their timeout (spares: "
                f"{self.spare}); sync capacity is below --concurrency {self.size}"
            )
        return True, f"{stuck} stuck sync handler threads (spares: {self.spare})"

    def close(self) -> None:
        """Drop queued calls; do not wait for running ones (they may never return)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
