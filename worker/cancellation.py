"""Stopping job runners even when user code swallows a CancelledError; deadlines for cleanup.

Why the worker once needed more than ``task.cancel()``: redis-py 8.1 on Python 3.11 loses
cancellations. ``Connection.send_packed_command`` writes through ``asyncio.wait_for``, and
3.11's ``wait_for`` returns normally when the cancel lands after the inner write finished
(CPython gh-86296, fixed in 3.12), leaving ``task.cancelling() == 1`` while the task carries
on. The worker used to check for that after every Redis call and to re-send cancels to all its
loops. Since the fetcher guarantees it at the right depth (:mod:`fetcher.cancellation`:
``RedisConnection.execute`` raises CancelledError whenever a cancel arrived during the call),
the worker's own loops stop on one plain cancel and ``asyncio.timeout`` bounds Redis calls.

What remains is for job handlers, which are user code and may catch CancelledError:

- :func:`checkpoint` after a handler returned: a runner whose cancel the handler swallowed
  stops there instead of taking the next job;
- :func:`cancel_and_wait` re-sends the cancel to the runner tasks until they are done, for a
  handler that swallows one cancel and awaits again (a TaskGroup cancels its tasks only once);
- :func:`finish_by` bounds a shutdown step by a deadline that a second signal can shorten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
RECANCEL_EVERY = 0.05


def checkpoint() -> None:
    """Raise CancelledError if the current task was cancelled and user code swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` until every one has finished (re-sending swallowed cancellations)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY)


async def finish_by(
    step: Coroutine[Any, Any, T],
    deadline: float,
    *,
    hurry: asyncio.Event | None = None,
    hurry_within: float = 1.0,
) -> tuple[bool, T | None]:
    """Run ``step`` until the loop time ``deadline``: (True, result) or (False, None) if cut.

    When ``hurry`` is set meanwhile (a second signal), the deadline moves to at most
    ``hurry_within`` seconds from then.
    """
    loop = asyncio.get_running_loop()
    scope = asyncio.timeout_at(deadline)

    async def shorten(event: asyncio.Event) -> None:
        await event.wait()
        scope.reschedule(min(deadline, loop.time() + hurry_within))

    failure: Exception | None = None
    result: T | None = None
    try:
        async with scope, asyncio.TaskGroup() as watchers:
            # The watcher lives in a TaskGroup (never a stray task): the group cancels and awaits
            # it on every way out, including our own deadline. The step runs in this task, and
            # its error is carried out of the group by hand so it is not wrapped in a group.
            watcher = watchers.create_task(shorten(hurry)) if hurry is not None else None
            try:
                result = await step
            except Exception as exc:  # noqa: BLE001 (re-raised below, outside the group)
                failure = exc
            finally:
                if watcher is not None:
                    watcher.cancel()
    except TimeoutError:
        if not scope.expired():  # the step's own error, not our deadline
            raise
        return False, None
    if failure is not None:
        if isinstance(failure, TimeoutError) and scope.expired():
            return False, None
        raise failure
    return True, result
