"""Connection layer.

Cancellation that sticks at the fetcher's boundary, whatever redis-py does below.

redis-py 8.1 on Python 3.11 loses cancellations: ``Connection.send_packed_command`` writes
through ``asyncio.wait_for(self._send_packed_command(...), self.socket_timeout)``, and 3.11's
``wait_for`` returns the inner task's result instead of raising when the caller is cancelled
after that inner task has finished but before the caller resumed (CPython gh-86296, fixed in
3.12, whose ``wait_for`` is built on ``asyncio.timeout``). The write almost always completes in
one step, so that window opens on every command: a task looping on ``GET`` and cancelled at a
random moment kept running in about two tries of three. The CancelledError is gone, but the
task's cancel count (``Task.cancelling()``) still records the request.

:class:`CancelGuard` compares that count with its value when a Redis call began: if it grew,
the task was cancelled during the call, so the call must end in CancelledError even though
nothing below raised one. Comparing with the count at entry (not with zero) keeps a task that
handled an earlier cancel and is legitimately cleaning up (e.g. acking after a shutdown signal)
able to talk to Redis.

That check runs when the call returns, which is too late for a call that blocks server-side
(BLMOVE for up to the block timeout): a cancel swallowed while its command was being sent, or
while a fresh connection's handshake ran, left the task reading the reply for the whole block,
so a shutdown signal that came just after the worker started waited the block timeout out.
:func:`interruptible` runs such a call where no cancel can be lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: How often a cancel is re-sent to a call that swallowed one (it is then reading: it sticks).
RECANCEL_EVERY = 0.01


def cancel_requests() -> int:
    """How many cancellations of the current task are pending (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


class CancelGuard:
    """Remembers the current task's cancel count; says whether a cancel arrived since."""

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry = cancel_requests()

    @property
    def cancelled(self) -> bool:
        """True when the task was cancelled after this guard was made (even if swallowed)."""
        return cancel_requests() > self._entry

    def lost_cancel(self) -> asyncio.CancelledError:
        """The CancelledError to raise in place of a result a swallowed cancel let through."""
        return asyncio.CancelledError("cancelled during a Redis call (the library below lost it)")


async def interruptible(call: Awaitable[T]) -> T:
    """Await ``call`` in a child task, so that cancelling the current task interrupts it at once.

    The current task waits on a plain future, which cannot swallow a cancel; on cancel, the
    child is cancelled again until it has finished (the first cancel may land in redis-py's
    lossy ``wait_for`` and be swallowed; a later one reaches the read), then CancelledError
    propagates. The child never outlives this call. Costs a task: meant for blocking calls.
    """
    child = asyncio.ensure_future(call)
    try:
        await asyncio.wait((child,))
    except asyncio.CancelledError:
        while not child.done():
            child.cancel()
            try:
                await asyncio.wait((child,), timeout=RECANCEL_EVERY)
            except asyncio.CancelledError:
                continue  # cancelled again while stopping the child: it still must not outlive us
        if not child.cancelled():
            child.exception()  # retrieved: an error after the cancel is not "never retrieved"
        raise
    return child.result()
