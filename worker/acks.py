"""Acknowledgements in batches: one round trip acks every job that finished since the last one.

A runner that finished a job only appends it here and moves on to the next job; one ack loop
sends what has gathered. Under load that turns N round trips into one; when idle a batch is a
single job and goes out at once (no timer, no added latency).

Until a job is acked it stays in this worker's processing list, so a crash between finishing and
acking repeats the job (at-least-once), never loses it. Shutdown calls :meth:`flush` before
giving unfinished jobs back, so a finished job is not requeued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

J = TypeVar("J")


class AckBatcher(Generic[J]):
    """``on_acked(n)`` is told after each batch of ``n`` went out (the window frees their slots:
    jobs waiting here count against the concurrency bound)."""

    def __init__(
        self,
        ack_many: Callable[[list[J]], Awaitable[object]],
        on_acked: Callable[[int], None] | None = None,
    ) -> None:
        self._ack_many = ack_many
        self._on_acked = on_acked
        self._pending: list[J] = []
        self._wake = asyncio.Event()
        self.acked = 0

    def __repr__(self) -> str:
        return f"<AckBatcher pending={len(self._pending)} acked={self.acked}>"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, job: J) -> None:
        self._pending.append(job)
        if not self._wake.is_set():
            self._wake.set()

    async def run(self) -> None:
        """Send batches until cancelled (a Redis outage just makes a batch wait and grow)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Ack everything pending now. On cancellation the unsent batch is kept for the next try."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self._ack_many(batch)
        except BaseException:
            self._pending[:0] = batch
            raise
        self.acked += len(batch)
        if self._on_acked is not None:
            self._on_acked(len(batch))
