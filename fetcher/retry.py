"""Connection layer. The one retry policy: exponential backoff with jitter and a cap, as data.

The policy only computes delays and builds a fresh tenacity ``AsyncRetrying`` per call (tenacity
keeps per-run statistics on the instance, so one instance must never serve two coroutines).
Which failures are retryable is decided by :mod:`fetcher.failures`; logging and counting are done
by :class:`fetcher.connection.RedisConnection`, which owns the outage state.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
)
from tenacity.stop import stop_base

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """Delays ``base * 2**(n-1)`` capped at ``cap``; with ``jitter`` each is drawn from
    ``[delay/2, delay]`` so a fleet of workers does not reconnect in lockstep.

    ``deadline`` (seconds) bounds a whole call, for one-shot callers such as a CLI enqueue;
    ``None`` retries forever (the worker's loops). ``max_attempts`` bounds the number of attempts
    (``None``: unbounded). ``sleep`` and ``rand`` are injectable so tests run fast and exact.
    """

    base: float = 0.1
    cap: float = 5.0
    jitter: bool = True
    deadline: float | None = None
    max_attempts: int | None = None
    sleep: Sleep = field(default=asyncio.sleep, repr=False, compare=False)
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"RetryPolicy needs max_attempts >= 1, got {self.max_attempts}")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(
                f"RetryPolicy needs 0 < base <= cap, got base={self.base} cap={self.cap}"
            )

    def delay(self, attempt: int) -> float:
        """Wait after failed attempt number ``attempt`` (1-based)."""
        full = min(self.cap, self.base * 2.0 ** min(attempt - 1, 62))
        if not self.jitter:
            return full
        return full / 2 + self.rand() * full / 2

    def retrying(
        self,
        retryable: Callable[[BaseException], bool],
        before_sleep: Callable[[RetryCallState], None],
        deadline: float | None = None,
        *,
        started: float | None = None,
    ) -> AsyncRetrying:
        """A fresh AsyncRetrying for one call. ``deadline`` overrides the policy's and counts
        from ``started`` (``time.monotonic()``) when given, else from the loop's start."""
        limit = deadline if deadline is not None else self.deadline
        stop: stop_base = stop_never if limit is None else _StopBeforeDeadline(limit, started)
        if self.max_attempts is not None:
            stop = stop | stop_after_attempt(self.max_attempts)
        return AsyncRetrying(
            sleep=self.sleep,
            stop=stop,
            wait=lambda state: self.delay(state.attempt_number),
            retry=retry_if_exception(retryable),
            before_sleep=before_sleep,
            reraise=True,
        )


class _StopBeforeDeadline(stop_base):
    """Stop when the next wait would end past the deadline (measured from the call's start)."""

    def __init__(self, deadline: float, started: float | None = None) -> None:
        self.deadline = deadline
        self.started = started

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.started is None or retry_state.outcome_timestamp is None:
            elapsed = retry_state.seconds_since_start or 0.0
        else:
            elapsed = retry_state.outcome_timestamp - self.started
        upcoming = retry_state.upcoming_sleep or 0.0
        return elapsed + upcoming >= self.deadline
