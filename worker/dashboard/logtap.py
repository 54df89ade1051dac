"""A logging handler that keeps the most recent warnings and errors (bounded), for the
dashboards' "Recent errors" panel.

The retry state of an outage (attempt, next retry, operation, cause) is not read from log text:
it is data in ``fetcher.ConnectionStats``, which the heartbeat and ``top`` pass on. The recovery
line is recognised by the ``connection_event`` field the connection owner attaches to it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator


class LogTap(logging.Handler):
    """Collects WARNING+ records; thread-safe (the live view renders from rich's thread)."""

    def __init__(self, max_errors: int = 20, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._errors: deque[tuple[float, str]] = deque(maxlen=max_errors)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().splitlines()[0] if record.msg else ""
        restored = getattr(record, "connection_event", None) == "restored"
        if record.levelno >= logging.WARNING and not restored:
            with self._guard:
                self._errors.append((record.created, line))

    def errors(self) -> list[tuple[float, str]]:
        with self._guard:
            return list(self._errors)

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
