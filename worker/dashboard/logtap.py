"""A logging handler that keeps what the dashboards show from log records.

- the most recent warnings and errors (bounded), for the "Recent errors" panel;
- the retry state of the current Redis outage, read from fetcher's outage line, whose format is
  fixed in CONTRACTS.md: ``Redis EP unreachable while OP: ERR (attempt 3, down 2.4 s, retrying
  in 0.8 s)``; the recovery line ``Redis EP reachable again after ...`` clears it.

The connection owner's stats carry the attempt count but not the next wait; the log line has
both, so the dashboards take them from here.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_OUTAGE = re.compile(r"^Redis \S+ unreachable .*\(attempt (\d+), .*retrying in ([\d.]+) s\)$")
_RESTORED = re.compile(r"^Redis \S+ reachable again\b")


@dataclass(frozen=True)
class RetryInfo:
    attempt: int
    next_retry_at: float  # unix seconds
    line: str
    at: float


class LogTap(logging.Handler):
    """Collects WARNING+ records; thread-safe (the live view renders from rich's thread)."""

    def __init__(self, max_errors: int = 20, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._errors: deque[tuple[float, str]] = deque(maxlen=max_errors)
        self._retry: RetryInfo | None = None
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().splitlines()[0] if record.msg else ""
        with self._guard:
            if m := _OUTAGE.match(line):
                wait = float(m.group(2))
                self._retry = RetryInfo(
                    int(m.group(1)), record.created + wait, line, record.created
                )
            elif _RESTORED.match(line):
                self._retry = None
            if record.levelno >= logging.WARNING and not _RESTORED.match(line):
                self._errors.append((record.created, line))

    def errors(self) -> list[tuple[float, str]]:
        with self._guard:
            return list(self._errors)

    def retry(self) -> RetryInfo | None:
        with self._guard:
            return self._retry

    def overlay(self, snap: dict[str, Any]) -> dict[str, Any]:
        """``snap`` plus ``retry_attempt``/``retry_next_at`` (when it lacks them and an outage
        line was seen) so the connection panel can show the next wait."""
        info = self.retry()
        if info is None or snap.get("retry_next_at") is not None:
            return snap
        return {**snap, "retry_attempt": info.attempt, "retry_next_at": info.next_retry_at}

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[LogTap]:
        """Be the root logger's only handler while inside: for full-screen views, where a log
        line written to the terminal would tear the screen. The handlers are restored after."""
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [self]
        try:
            yield self
        finally:
            root.handlers = saved

    def __enter__(self) -> LogTap:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
