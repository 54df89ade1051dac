"""The sliding window: at most N jobs run at once, and the next starts as soon as one ends.

The worker runs a fixed pool of N runner coroutines that pull jobs from this window, and one
fetch loop that pushes into it. That shape is the whole concurrency bound:

- running jobs ≤ N, because there are N runners;
- jobs held by this process (running + buffered + finished but not yet acked) ≤ N + prefetch,
  because the fetch loop asks the fetcher for exactly :meth:`JobWindow.free` jobs and waits in
  :meth:`wait_for_space` otherwise. A finished job keeps its slot (:meth:`hold`) until its ack
  has been sent (:meth:`acked`): a slow ack path slows fetching instead of letting this worker's
  processing lists grow without limit.

Nothing is created per job except the job itself (no Task, no entry in a growing collection), so
memory stays flat however many jobs go through: the old worker's leak kept one task per job.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

J = TypeVar("J")


class JobWindow(Generic[J]):
    """A bounded hand-off from one producer (the fetch loop) to N consumers (the runners).

    Invariant: ``running + len(buffer) + acking <= capacity + prefetch`` and
    ``running <= capacity``, as long as the producer only ever :meth:`put`s at most :meth:`free`
    jobs.
    """

    def __init__(self, capacity: int, prefetch: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.capacity = capacity
        self.prefetch = prefetch
        self.limit = capacity + prefetch
        self.running = 0
        self.acking = 0  # finished jobs whose ack has not been sent yet: still held
        self._buffer: deque[J] = deque()
        # Idle runners, each parked on one future; at most ``capacity`` of them.
        self._takers: deque[asyncio.Future[J | None]] = deque()
        self._space = asyncio.Event()
        self._space.set()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<JobWindow {state} running={self.running}/{self.capacity} "
            f"buffered={len(self._buffer)} acking={self.acking} prefetch={self.prefetch}>"
        )

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    def free(self) -> int:
        """How many more jobs this process may take on right now."""
        return self.limit - self.running - len(self._buffer) - self.acking

    async def wait_for_space(self) -> int:
        """Wait until :meth:`free` is positive and return it (the size of the next fetch)."""
        while (free := self.free()) <= 0:
            self._space.clear()
            await self._space.wait()
        return free

    def put(self, jobs: Iterable[J]) -> None:
        """Hand fetched jobs to idle runners first, buffer the rest (the prefetch)."""
        if self._closed:
            raise RuntimeError("put() on a closed JobWindow: the jobs would never run")
        takers = self._takers
        buffer = self._buffer
        for job in jobs:
            while takers:
                waiter = takers.popleft()
                if not waiter.done():
                    self.running += 1
                    waiter.set_result(job)
                    break
            else:
                buffer.append(job)
        if self.free() <= 0:
            self._space.clear()

    async def take(self) -> J | None:
        """The next job for a runner (counted as running), or None once the window is closed."""
        if self._buffer and not self._closed:
            self.running += 1
            return self._buffer.popleft()
        if self._closed:
            return None
        waiter: asyncio.Future[J | None] = asyncio.get_running_loop().create_future()
        self._takers.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                job = waiter.result()
                if job is not None:
                    # Handed over in the same loop iteration as the cancel: keep it unstarted.
                    self.running -= 1
                    self._buffer.appendleft(job)
            waiter.cancel()
            raise

    def release(self) -> None:
        """A runner finished its job (whatever the outcome): one slot is free again."""
        self.running -= 1
        self._space.set()

    def hold(self) -> None:
        """A runner's job finished and waits for its ack: it keeps a slot until :meth:`acked`.
        (Call before :meth:`release`, which frees the runner.)"""
        self.acking += 1

    def acked(self, count: int) -> None:
        """``count`` held jobs were acked: their slots are free again."""
        self.acking = max(0, self.acking - count)
        self._space.set()

    def close(self) -> None:
        """Stop handing out jobs: idle runners get None, buffered jobs stay for :meth:`drain`."""
        self._closed = True
        while self._takers:
            waiter = self._takers.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._space.set()

    def drain(self) -> list[J]:
        """Remove and return the jobs that never started (call once the runners have stopped)."""
        unstarted = list(self._buffer)
        self._buffer.clear()
        return unstarted
