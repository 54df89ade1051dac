"""Connection layer. Connection state, outage statistics and the events subscribers receive.

The state changes in plain synchronous methods (no ``await`` inside), so a transition is never
interleaved with another coroutine; listeners are called synchronously, in order, from there.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("fetcher.connection")


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # no command has succeeded yet
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # an outage is in progress; calls are being retried
    CLOSED = "closed"


@dataclass(frozen=True)
class ConnectionLost:
    endpoint: str
    operation: str
    error: str  # the cause, e.g. "ConnectionResetError [Errno 104] Connection reset by peer"
    at: float  # unix seconds


@dataclass(frozen=True)
class ConnectionRestored:
    endpoint: str
    down_seconds: float
    attempts: int
    at: float


ConnectionEvent = ConnectionLost | ConnectionRestored
Listener = Callable[[ConnectionEvent], None]


def outage_line(
    endpoint: str, operation: str, cause: str, attempt: int, down: float, wait: float
) -> str:
    """The descriptive outage line (format fixed in docs/CONTRACTS.md), from its fields."""
    return (
        f"Redis {endpoint} unreachable while {operation}: {cause} "
        f"(attempt {attempt}, down {down:.1f} s, retrying in {wait:.1f} s)"
    )


@dataclass
class ConnectionStats:
    """What heartbeats, the dashboard and ``top`` show, as data (nobody parses the line).

    Outage-wide: ``outage_since`` (unix s, start of the current outage), ``attempts`` (failed
    attempts of all calls in the current, or once restored the last, outage), ``outages``
    (count since start). The call that failed last, for the retry display: ``operation``,
    ``retry_attempt`` (its attempt number), ``retry_next_at`` (unix s of its next try),
    ``down_since`` (unix s of its first failure: the outage line's ``down`` is its own age) and
    ``last_cause`` (``ConnectionRefusedError [Errno 111] ...``); ``last_error`` is its whole
    outage line as logged. The ``retry_*`` fields are None when no outage is in progress.
    ``quiet_reconnects`` counts connections the server had closed while idle, replaced without
    an outage.
    """

    endpoint: str = ""
    outage_since: float | None = None
    attempts: int = 0
    outages: int = 0
    operation: str | None = None
    retry_attempt: int | None = None
    retry_next_at: float | None = None
    down_since: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_cause: str | None = None
    quiet_reconnects: int = 0


def stats_fields(stats: ConnectionStats) -> dict[str, Any]:
    """The stats as heartbeat keys (docs/CONTRACTS.md): what the worker's heartbeat, its live
    dashboard and ``top`` all read, so none of them parses the outage line."""
    return {
        "endpoint": stats.endpoint,
        "outages": stats.outages,
        "outage_since": stats.outage_since,
        "retry_attempt": stats.retry_attempt,
        "retry_next_at": stats.retry_next_at,
        "outage_operation": stats.operation if stats.outage_since is not None else None,
        "outage_cause": stats.last_cause if stats.outage_since is not None else None,
        "last_error": stats.last_error,
        "last_error_at": stats.last_error_at,
        "quiet_reconnects": stats.quiet_reconnects,
    }


@dataclass
class FailingCall:
    """One ``execute`` call that has failed at least once and not yet ended."""

    operation: str
    since: float  # time.monotonic() of its first failure
    since_unix: float
    attempts: int = 0


class OutageTracker:
    """Owns state + stats of one connection and tells listeners about transitions.

    An outage begins with the first failed attempt of any call and ends when a call succeeds
    while no call is failing any more: a heartbeat that goes through while the fetch keeps
    failing does not end it (nor reset its clock), so the recovery line cannot flap. The calls
    currently failing are held in ``_failing`` (one entry per concurrent ``execute`` call, so
    bounded by the caller's task count; each is removed when its call ends).
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.state = ConnectionState.CONNECTING
        self.stats = ConnectionStats(endpoint=endpoint)
        self._outage_started_mono: float | None = None
        self._failing: dict[int, FailingCall] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` on every lost/restored transition; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def in_outage(self) -> bool:
        return self._outage_started_mono is not None

    def failed(self, call: int, operation: str, cause: str) -> FailingCall:
        """Record one failed attempt of call ``call`` (any key unique among live calls, e.g.
        ``id()`` of its record; ``cause``: ``ConnectionResetError [Errno 104] ...``)."""
        now, mono = time.time(), time.monotonic()
        failing = self._failing.get(call)
        if failing is None:
            failing = self._failing[call] = FailingCall(operation, mono, now)
        failing.attempts += 1
        stats = self.stats
        stats.attempts += 1
        stats.operation = operation
        stats.retry_attempt = failing.attempts
        stats.retry_next_at = None
        stats.down_since = failing.since_unix
        stats.last_error = f"Redis {self.endpoint} unreachable while {operation}: {cause}"
        stats.last_error_at = now
        stats.last_cause = cause
        if self._outage_started_mono is None:
            self._outage_started_mono = mono
            stats.outage_since = now
            stats.outages += 1
            stats.attempts = 1
            if self.state is not ConnectionState.CLOSED:
                self.state = ConnectionState.RECONNECTING
            self._emit(ConnectionLost(self.endpoint, operation, cause, now))
        return failing

    def retrying(self, call: int, wait: float) -> str:
        """Call ``call`` waits ``wait`` s before its next attempt: record when, and return the
        outage line built from the stats' fields (the caller logs it)."""
        failing = self._failing[call]
        stats = self.stats
        stats.operation = failing.operation
        stats.retry_attempt = failing.attempts
        stats.retry_next_at = time.time() + wait
        stats.down_since = failing.since_unix
        line = outage_line(
            self.endpoint,
            failing.operation,
            stats.last_cause or "",
            failing.attempts,
            time.monotonic() - failing.since,
            wait,
        )
        stats.last_error = line
        return line

    def gave_up(self, line: str) -> None:
        """A one-shot call stopped retrying: ``line`` is its final outage line."""
        self.stats.last_error = line

    def ended(self, call: int, *, ok: bool) -> None:
        """Call ``call`` returned (``ok``) or raised. A success with no call failing any more
        ends the outage, logging the recovery line; a call that gave up ends nothing."""
        self._failing.pop(call, None)
        if not ok:
            return
        if self.state is ConnectionState.CONNECTING:
            self.state = ConnectionState.CONNECTED
        if self._outage_started_mono is None or self._failing:
            return
        down = time.monotonic() - self._outage_started_mono
        stats = self.stats
        attempts = stats.attempts
        self._outage_started_mono = None
        stats.outage_since = stats.retry_attempt = stats.retry_next_at = None
        stats.down_since = None
        if self.state is not ConnectionState.CLOSED:
            self.state = ConnectionState.CONNECTED
        log.warning(
            "Redis %s reachable again after %.1f s (%d attempts)",
            self.endpoint,
            down,
            attempts,
            extra={"connection_event": "restored", "endpoint": self.endpoint},
        )
        self._emit(ConnectionRestored(self.endpoint, down, attempts, time.time()))

    def replaced_quietly(self) -> None:
        """A connection the server closed while idle was replaced: counted, not an outage."""
        self.stats.quiet_reconnects += 1

    def closed(self) -> None:
        self.state = ConnectionState.CLOSED

    def _emit(self, event: ConnectionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the connection owner
                log.exception("connection event listener %r failed on %r", listener, event)
