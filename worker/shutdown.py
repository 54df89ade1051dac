"""Signals to shutdown phases: the first SIGTERM/SIGINT asks for a graceful stop, the second forces.

Every signal a job worker may plausibly receive has a defined, logged meaning (their default
actions killed the process without a line, its running jobs cut and left for recovery):

- SIGTERM, SIGINT: graceful stop; a second one forces it (:meth:`Shutdown.on_signal`).
- SIGHUP (a closed terminal or session): graceful stop, never forced, however often it comes;
  ignored when the process was started ignoring it (nohup).
- SIGUSR1: one INFO line describing the process now (:attr:`Shutdown.state`: for a worker, the
  jobs it runs, its connection, its counters); nothing else changes.
- SIGUSR2: no meaning: ignored, with a WARNING line saying so.

The worker awaits :attr:`Shutdown.requested` to begin draining and :attr:`Shutdown.forced` to
give up on running jobs at once. The exit code follows the usual convention: 0 after a graceful
stop, ``128 + signum`` (130 for SIGINT, 143 for SIGTERM) when a second signal forced it.

The last steps of a stop live here too: :func:`drain` (wait for the running jobs, bounded) and
:func:`give_back` (flush acks, requeue, unregister, each bounded by the grace deadline);
``worker.worker.Worker._stop`` runs them in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from steadfetch.fetcher import ConnectionState, Fetcher, Job, RedisConnection
from steadfetch.worker.acks import AckBatcher
from steadfetch.worker.cancellation import finish_by

log = logging.getLogger("worker.shutdown")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Asks for one state line; and the signals with no meaning, ignored with a line.
STATE_SIGNAL = signal.SIGUSR1
IGNORED_SIGNALS = (signal.SIGUSR2,)
#: Part of the grace period kept for giving jobs back and unregistering (at most this many s).
CLEANUP_RESERVE = 2.0
#: A forced (second-signal) exit still tries this long to give jobs back.
FORCED_CLEANUP = 1.0
# A closed terminal or ssh session: by default it killed the worker without a line (its jobs
# waited for recovery). Now a graceful stop, however often it comes (a hangup is no "stop at
# once"), unless the process was started ignoring it (nohup). A supervised child's parent-death
# handler (worker.supervisor.watch_parent) is installed after this one and replaces it.
HANGUP = signal.SIGHUP


class Shutdown:
    """Which phase the process is in, driven by signals (or by code calling :meth:`request`)."""

    def __init__(self, state: Callable[[], str] | None = None) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.first_signal: int | None = None
        self.forcing_signal: int | None = None
        #: One line describing the process, logged on SIGUSR1 (default: the shutdown phase).
        self.state: Callable[[], str] = state if state is not None else lambda: self.phase

    @property
    def phase(self) -> str:
        """``running``, ``stopping`` (draining after a first request) or ``forced``."""
        if self.forced.is_set():
            return "forced"
        return "stopping" if self.requested.is_set() else "running"

    def __repr__(self) -> str:
        return f"<Shutdown {self.phase}>"

    @property
    def exit_code(self) -> int:
        """0 after a graceful stop, 128 + signum when a second signal forced the exit."""
        return 128 + self.forcing_signal if self.forcing_signal is not None else 0

    def request(self, reason: str) -> None:
        if not self.requested.is_set():
            log.info("shutdown requested (%s): no more fetching, draining running jobs", reason)
            self.requested.set()

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.requested.is_set():
            self.first_signal = signum
            self.request(f"{name}; send it again to stop at once")
        elif not self.forced.is_set():
            self.forcing_signal = signum
            log.warning("second signal (%s): cancelling running jobs and exiting now", name)
            self.forced.set()

    def on_hangup(self) -> None:
        self.request("SIGHUP: the terminal or session is gone")

    def on_state_signal(self) -> None:
        """SIGUSR1: say what this process is doing, in one line; change nothing."""
        try:
            state = self.state()
        except Exception as exc:  # noqa: BLE001  (a state line must never stop the process)
            state = f"(the state could not be read: {type(exc).__name__} {exc})"
        log.info("state (SIGUSR1): %s", state)

    def on_ignored_signal(self, signum: int) -> None:
        log.warning(
            "%s ignored: it has no meaning for steadfetch (SIGUSR1 logs the state, "
            "SIGTERM stops gracefully)",
            signal.Signals(signum).name,
        )

    @contextmanager
    def signal_handlers(self) -> Iterator[None]:
        """Route SIGTERM and SIGINT to :meth:`on_signal`, SIGHUP to :meth:`on_hangup` (unless
        ignored, as under nohup), SIGUSR1 to :meth:`on_state_signal` and SIGUSR2 to
        :meth:`on_ignored_signal`, for the duration of the block. After it, SIGUSR1 and SIGUSR2
        are ignored (:func:`ignore_user_signals`), so the end of the process cannot die of them."""
        loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        hangup = signal.getsignal(HANGUP) is not signal.SIG_IGN
        if hangup:
            loop.add_signal_handler(HANGUP, self.on_hangup)
        loop.add_signal_handler(STATE_SIGNAL, self.on_state_signal)
        for sig in IGNORED_SIGNALS:
            loop.add_signal_handler(sig, self.on_ignored_signal, sig)
        try:
            yield
        finally:
            for sig in (*HANDLED_SIGNALS, STATE_SIGNAL, *IGNORED_SIGNALS):
                loop.remove_signal_handler(sig)
            if hangup:
                loop.remove_signal_handler(HANGUP)
            ignore_user_signals()


def ignore_user_signals() -> None:
    """Ignore SIGUSR1 and SIGUSR2 outside :meth:`Shutdown.signal_handlers` (from the start of
    ``steadfetch``, and after the handlers are removed): their default action would kill the
    process without a line while it starts or finishes."""
    for sig in (STATE_SIGNAL, *IGNORED_SIGNALS):
        signal.signal(sig, signal.SIG_IGN)


def cleanup_reserve(grace_period: float) -> float:
    """The part of ``grace_period`` kept for :func:`give_back` (not spent draining)."""
    return min(CLEANUP_RESERVE, grace_period * 0.2)


async def drain(running: asyncio.Task[None], forced: asyncio.Event, *, until: float) -> None:
    """Wait until the running jobs end, the loop time ``until`` passes or ``forced`` is set (a
    second signal).

    ``running`` is only watched, never cancelled here: the caller decides what happens to
    jobs still running. The second-signal watcher is owned by a TaskGroup, so it is gone
    when this returns, whichever way it ends."""
    try:
        async with asyncio.timeout_at(until), asyncio.TaskGroup() as watchers:
            forcing = watchers.create_task(forced.wait(), name="forced")
            await asyncio.wait([running, forcing], return_when=asyncio.FIRST_COMPLETED)
            forcing.cancel()
    except TimeoutError:
        pass  # grace period over: the caller cancels what still runs


def outage_cause(conn: RedisConnection) -> str:
    """What the current outage looks like, for a log line: the last failed attempt's
    exception, or, when no attempt has failed yet (a frozen server: no reply, no error
    before the deadline), that."""
    stats = conn.stats
    if conn.state is ConnectionState.RECONNECTING and stats.last_cause:
        down = time.time() - (stats.outage_since or time.time())
        return f"{stats.last_cause}; attempt {stats.attempts}, down {down:.1f} s"
    return "TimeoutError no reply before the grace deadline"


async def give_back(
    fetcher: Fetcher,
    acks: AckBatcher[Job],
    jobs: list[Job],
    deadline: float,
    shutdown: Shutdown,
) -> int:
    """Flush ``acks``, requeue unfinished ``jobs``, unregister; each bounded by ``deadline`` (at
    most :data:`FORCED_CLEANUP` from now, or from when it is set, once a second signal came).
    Returns how many jobs went back to their queues (0 if the requeue step did not finish).

    When Redis is unreachable until the deadline, the jobs stay in this worker's processing
    list (reliable mode); another worker recovers them once this heartbeat expires.
    """
    loop = asyncio.get_running_loop()
    forced = shutdown.forced
    if forced.is_set():
        deadline = min(deadline, loop.time() + FORCED_CLEANUP)
    reliable = fetcher.mode == "reliable"
    steps: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = [
        ("acking finished jobs", acks.flush)
    ]
    if reliable:  # unregister gives back what the lists hold
        steps.append(("requeueing unfinished jobs and unregistering", fetcher.unregister))
    else:
        if jobs:
            steps.append(("requeueing unfinished jobs", functools.partial(fetcher.requeue, jobs)))
        steps.append(("unregistering", fetcher.unregister))
    requeued = 0
    for what, step in steps:
        finished, result = await finish_by(
            step(),
            max(deadline, loop.time() + 0.05),
            hurry=forced,
            hurry_within=FORCED_CLEANUP,
        )
        if not finished:
            log.error(
                "shutdown: Redis %s unreachable while %s (%s); gave up at the grace deadline. %s",
                fetcher.conn.endpoint,
                what,
                outage_cause(fetcher.conn),
                "Unfinished jobs stay in this worker's processing list and will be recovered "
                "by the next worker once this worker's heartbeat expires"
                if reliable
                else f"{len(jobs)} fast-mode jobs are lost",
            )
            break
        if what.startswith("requeueing"):
            requeued = result if isinstance(result, int) else len(jobs)
    return requeued
