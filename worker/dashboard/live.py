"""``steadfetch run --live``: the worker's own dashboard, with log lines flowing above it.

>>> with LiveDashboard(worker.snapshot):
...     await worker.run()

``snapshot`` returns a heartbeat-shaped dict (CONTRACTS.md). It is called from rich's refresh
thread, so it must be cheap and must not await: build the dict from plain attributes.

Without a terminal (a pipe, a file, systemd, a container log) the context manager does nothing
and the logs stay plain lines. ``no_color=True`` or the ``NO_COLOR`` environment variable turns
colour off (rich reads ``NO_COLOR`` itself).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from steadfetch.worker.dashboard.logtap import LogTap
from steadfetch.worker.dashboard.render import worker_dashboard

#: Throughput samples kept for the sparkline: one per refresh, a minute at the default rate.
HISTORY = 60


class LiveDashboard:
    """A rich Live view of one worker; a no-op without a TTY.

    ``active`` says whether the view is on screen. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        console: Console | None = None,
        *,
        refresh: float = 1.0,
        no_color: bool = False,
        history: int = HISTORY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh <= 0:
            raise ValueError("refresh must be > 0 seconds")
        self._snapshot = snapshot
        self.console = console or Console(no_color=no_color or None)  # None: rich reads NO_COLOR
        if no_color:
            self.console.no_color = True
        self.refresh = refresh
        self._clock = clock
        self.history: deque[float] = deque(maxlen=history)
        self._last_sample: float | None = None
        self._tap = LogTap()
        self._live: Live | None = None
        self._rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    @property
    def active(self) -> bool:
        return self._live is not None

    def render(self) -> RenderableType:
        """One frame: the current snapshot, the throughput history, captured errors."""
        now = self._clock()
        try:
            snap = dict(self._snapshot())
        except Exception as exc:  # noqa: BLE001 - shown on screen; the view must keep running
            return Text(f"dashboard snapshot failed: {type(exc).__name__}: {exc}", style="red")
        if self._last_sample is None or now - self._last_sample >= self.refresh * 0.9:
            rate = snap.get("jobs_per_second")
            self.history.append(float(rate) if isinstance(rate, int | float) else 0.0)
            self._last_sample = now
        return worker_dashboard(snap, history=self.history, errors=self._tap.errors(), now=now)

    def __enter__(self) -> LiveDashboard:
        if not self.console.is_terminal:
            return self
        self._tap.__enter__()
        # Only streams that reach the terminal are drawn above the view; one redirected to a
        # file (``2>worker.log``) keeps going there.
        live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=1 / self.refresh,
            redirect_stdout=_is_tty(sys.stdout),
            redirect_stderr=_is_tty(sys.stderr),
        )
        originals = (sys.stdout, sys.stderr)
        live.start()
        self._live = live
        self._reroute_log_handlers(originals)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live, self._live = self._live, None
        if live is None:
            return
        try:
            self._restore_log_handlers()
            live.stop()
        finally:
            self._tap.__exit__()

    def _reroute_log_handlers(self, originals: tuple[IO[str], IO[str]]) -> None:
        """Point stream handlers on the real stdout/stderr at rich's proxies, so log lines are
        printed above the live view instead of through it. Restored on exit."""
        current = (sys.stdout, sys.stderr)
        proxies = {
            id(old): new for old, new in zip(originals, current, strict=True) if new is not old
        }
        for handler in logging.getLogger().handlers:
            proxy = proxies.get(id(getattr(handler, "stream", None)))
            if isinstance(handler, logging.StreamHandler) and proxy is not None:
                old = handler.setStream(proxy)
                if old is not None:
                    self._rerouted.append((handler, old))

    def _restore_log_handlers(self) -> None:
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()


def _is_tty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream
        return False
