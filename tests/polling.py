"""Polling with a deadline: the tests' one way to wait for something (never a sleep).

Two flavours of one helper, because a test either runs in a thread (the worker subprocess
harness, the tmux terminal) or on the event loop (the fetcher tests). Both poll quickly and fail
with an ``AssertionError`` naming what they waited for. The chaos package keeps its own
``chaos.nemesis.wait_for``: it ships in the wheel (``steadfetch chaos``), which cannot import the
test suite, and its timeout is a ``TimeoutError`` the nemesis records as a fault outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
DEADLINE = 30.0  # "does not hang": generous, the machine is shared and loaded


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = DEADLINE, interval: float = 0.02
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    within: float = 10.0,
    what: str = "condition",
    interval: float = 0.01,
) -> None:
    """Poll ``predicate`` until true; fail after ``within`` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)
