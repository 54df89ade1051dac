"""Connection state, outage statistics and the events subscribers receive.

The state changes in plain synchronous methods (no ``await`` inside), so a transition is never
interleaved with another coroutine; listeners are called synchronously, in order, from there.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class ConnectionStats:
    """What heartbeats and the dashboard show. ``attempts`` counts failed attempts of the
    current (or, once restored, the last) outage; ``outages`` counts outages since start."""

    outage_since: float | None = None
    attempts: int = 0
    outages: int = 0
    last_error: str | None = None  # the whole outage line, as logged
    last_error_at: float | None = None
    last_cause: str | None = None  # its cause alone: ``ConnectionRefusedError [Errno 111] ...``


class OutageTracker:
    """Owns state + stats of one connection and tells listeners about transitions."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.state = ConnectionState.CONNECTING
        self.stats = ConnectionStats()
        self._outage_started_mono: float | None = None
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` on every lost/restored transition; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def failed(self, operation: str, cause: str) -> float:
        """Record one failed attempt (``cause``: ``ConnectionResetError [Errno 104] ...``);
        returns seconds since the outage began."""
        now, mono = time.time(), time.monotonic()
        self.stats.attempts += 1
        self.stats.last_error = f"Redis {self.endpoint} unreachable while {operation}: {cause}"
        self.stats.last_error_at = now
        self.stats.last_cause = cause
        if self._outage_started_mono is None:
            self._outage_started_mono = mono
            self.stats.outage_since = now
            self.stats.outages += 1
            self.stats.attempts = 1
            if self.state is not ConnectionState.CLOSED:
                self.state = ConnectionState.RECONNECTING
            self._emit(ConnectionLost(self.endpoint, operation, cause, now))
        return mono - self._outage_started_mono

    def describe_outage(self, line: str) -> None:
        """Replace ``last_error`` by the full line once the next wait is known."""
        self.stats.last_error = line

    def succeeded(self) -> None:
        """A command went through: end the outage (if any), logging the recovery line."""
        if self.state is ConnectionState.CONNECTING:
            self.state = ConnectionState.CONNECTED
        if self._outage_started_mono is None:
            return
        down = time.monotonic() - self._outage_started_mono
        attempts = self.stats.attempts
        self._outage_started_mono = None
        self.stats.outage_since = None
        if self.state is not ConnectionState.CLOSED:
            self.state = ConnectionState.CONNECTED
        log.warning(
            "Redis %s reachable again after %.1f s (%d attempts)", self.endpoint, down, attempts
        )
        self._emit(ConnectionRestored(self.endpoint, down, attempts, time.time()))

    def closed(self) -> None:
        self.state = ConnectionState.CLOSED

    def _emit(self, event: ConnectionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the connection owner
                log.exception("connection event listener %r failed on %r", listener, event)
