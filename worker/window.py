"""The sliding window: at most N jobs run at once, and the next starts as soon as one ends.

The worker runs a fixed pool of N runner coroutines that pull jobs from this window, and one
fetch loop that pushes into it. That shape is the whole concurrency bound:

- running jobs ≤ N, because there are N runners;
- jobs held by this process (running + buffered + finished but not yet acked) ≤ N + prefetch,
  because the fetch loop asks the fetcher for exactly :meth:`JobWindow.free` jobs and waits in
  :meth:`wait_for_space` otherwise. A finished job keeps its slot (:meth:`hold`) until its ack
  has been sent (:meth:`acked`): a slow ack path slows fetching instead of letting this worker's
  processing lists grow without limit.

The prefetch itself is sized by :class:`PrefetchSizer` (Little's law: enough jobs in hand to
outlast the round trips of the next fetch and of the acks, so the runners never wait on Redis),
within a fixed ceiling. :meth:`JobWindow.resize` only moves the bound: a window that shrank below
what it holds fetches nothing until enough is acked, so the ceiling bounds what is held.

Nothing is created per job except the job itself (no Task, no entry in a growing collection), so
memory stays flat however many jobs go through: the old worker's leak kept one task per job.
"""

from __future__ import annotations

import asyncio
import math
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

    def resize(self, prefetch: int) -> None:
        """Set the prefetch (the window's bound is ``capacity + prefetch``). Shrinking below
        what is held takes nothing away: fetching waits until enough slots are free again."""
        if prefetch != self.prefetch:
            grew = prefetch > self.prefetch
            self.prefetch = prefetch
            self.limit = self.capacity + prefetch
            if grew:
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


#: Ack round trips a job in hand must cover besides the fetch's: the ack batch in flight and the
#: batch gathering behind it (acks count inside the window).
ACK_ROUND_TRIPS = 2
#: Weight of the newest sample in the moving averages of the round-trip time and throughput.
SMOOTHING = 0.2


class PrefetchSizer:
    """The prefetch that hides the round trip to Redis, by Little's law: to keep the runners
    busy while a fetch and the acks are in flight, a worker needs about ``throughput x time``
    jobs in hand, the time being the fetch's round trip and :data:`ACK_ROUND_TRIPS` acks'.

    The throughput is the jobs acked per second between two acks; an ack's round trip is its
    duration (an ack never blocks server-side), a fetch's is the duration of one that got all it
    asked for (so it did not block on an empty queue; fast mode's acks take no round trip at
    all, its fetches do). The result is
    clamped to ``[floor, ceiling]`` and to ``byte_budget`` over the mean payload size seen, so a
    worker on loopback keeps a small prefetch (other workers get the jobs) and one a
    millisecond away holds enough not to wait. ``floor == ceiling`` is a fixed prefetch.
    """

    def __init__(
        self, floor: int, ceiling: int, byte_budget: int, *, transfer_seconds: float | None = None
    ) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self.byte_budget = byte_budget
        # On a slow link (bandwidth, not latency) a bigger batch is not faster, only longer: its
        # reply, or the ack that carries its payloads back, grows past the read timeout and the
        # call fails. So the prefetch also holds no more than the link moves in this many
        # seconds (the worker gives a fraction of its read timeout; None: no such bound).
        self.transfer_seconds = transfer_seconds
        self._down_rate = 0.0  # bytes per second fetch replies moved (see _rate)
        self._up_rate = 0.0  # bytes per second acks moved (an ack carries the payloads back)
        self.prefetch = floor
        self.rtt = 0.0  # seconds an ack takes, moving average
        self.fetch_rtt = 0.0  # seconds a fetch that did not block takes, moving average
        self.rate = 0.0  # jobs acked per second, moving average
        self.payload_bytes = 0.0  # mean payload size, moving average
        self._last_ack_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"<PrefetchSizer {self.prefetch} in [{self.floor}, {self.ceiling}] "
            f"rtt={self.rtt * 1000:.2f}ms rate={self.rate:.0f}/s>"
        )

    def fetched(self, count: int, size: int, seconds: float, *, complete: bool) -> None:
        """``count`` jobs of ``size`` bytes in all came in (the byte bound's mean) after
        ``seconds``; ``complete``: all that was asked for (a round-trip sample)."""
        self.payload_bytes = _smooth(self.payload_bytes, size / count)
        # Every reply is a sample of the link (one that waited for work understates it: the
        # bound only gets stricter, never looser); only a complete one is a round trip.
        self._down_rate = self._rate(self._down_rate, size, seconds)
        if complete:
            self.fetch_rtt = _smooth(self.fetch_rtt, seconds)

    @staticmethod
    def _rate(rate: float, size: float, seconds: float) -> float:
        """``rate`` after a call moved ``size`` payload bytes in ``seconds`` (a lower bound on the
        link's rate: the time includes the round trip). Down at once, up slowly: a link that just
        got slow must bound the very next batch, which an average would not."""
        if seconds <= 0 or size <= 0:
            return rate
        sample = size / seconds
        return sample if not rate or sample < rate else _smooth(rate, sample)

    @property
    def link_rate(self) -> float:
        """Bytes per second of the slower direction (fetch replies come down, acks go up);
        0 while unknown."""
        known = [rate for rate in (self._down_rate, self._up_rate) if rate]
        return min(known) if known else 0.0

    def acked(self, count: int, seconds: float, now: float) -> None:
        """An ack of ``count`` jobs took ``seconds`` and returned at ``now``; resize."""
        if self.floor == self.ceiling:
            return
        last, self._last_ack_at = self._last_ack_at, now
        self.rtt = _smooth(self.rtt, seconds)
        self._up_rate = self._rate(self._up_rate, count * self.payload_bytes, seconds)
        if last is None or now <= last:
            return
        self.rate = _smooth(self.rate, count / (now - last))
        wanted = math.ceil(self.rate * (self.fetch_rtt + ACK_ROUND_TRIPS * self.rtt))
        ceiling = self.ceiling
        if self.payload_bytes:
            ceiling = min(ceiling, int(self.byte_budget / self.payload_bytes))
            if self.transfer_seconds is not None and self.link_rate:
                movable = int(self.transfer_seconds * self.link_rate / self.payload_bytes)
                ceiling = min(ceiling, movable)
        self.prefetch = max(self.floor, min(wanted, ceiling))


def _smooth(average: float, sample: float) -> float:
    """The moving average after ``sample`` (the first sample, while the average is 0, as is)."""
    return average + SMOOTHING * (sample - average) if average else sample
