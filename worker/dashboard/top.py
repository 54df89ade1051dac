"""``steadfetch top``: every worker on a Redis, from heartbeats and queue figures, refreshed.

Three things run side by side in one task group:

- the poller reads heartbeats and queue figures through ``fetcher`` (during an outage that
  call keeps retrying under the connection owner's policy, and simply does not return yet);
- the drawer redraws every ``refresh`` seconds (and after each poll) from the last data read
  and the connection owner's live state, so an outage shows as "reconnecting" with the attempt,
  the next wait and the time down, instead of a frozen screen or a crash;
- the keyboard: ``q`` (or Ctrl-C, or SIGTERM) sets the quit event; the group is then cancelled
  and the terminal restored.

Without a terminal, ``top`` prints one frame and exits (0 when Redis answered, 1 when it did not
within ``once_timeout``): a snapshot for scripts and bug reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live

from steadfetch.worker.dashboard.keys import cbreak_keys
from steadfetch.worker.dashboard.logtap import LogTap
from steadfetch.worker.dashboard.render import (
    DEFAULT_STALE_AFTER,
    Cluster,
    Link,
    errors_panel,
    top_view,
)

QUIT_KEYS = frozenset({"q", "Q", "\x03", "\x04"})
#: How many of top's own recent errors (outage lines) are shown under the tables.
TOP_ERRORS = 3


class ClusterSource(Protocol):
    """Where ``top`` gets its data: :class:`worker.dashboard.source.FetcherSource` in
    production. ``read`` may take as long as an outage lasts; ``link`` must answer at once."""

    def link(self) -> Link: ...

    async def read(self) -> Cluster: ...


class Top:
    """The ``top`` loop over one source; ``run`` returns the exit code."""

    def __init__(
        self,
        source: ClusterSource,
        console: Console,
        *,
        refresh: float = 1.0,
        stale: float = DEFAULT_STALE_AFTER,
        once_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh <= 0:
            raise ValueError("refresh must be > 0 seconds")
        self.source = source
        self.console = console
        self.refresh = refresh
        self.stale = stale
        self.once_timeout = once_timeout
        self.clock = clock
        self.cluster = Cluster()
        self.tap = LogTap(max_errors=TOP_ERRORS)
        self._polled = asyncio.Event()

    def frame(self) -> RenderableType:
        now = self.clock()
        link = self.source.link()
        view = top_view(self.cluster, link, now=now, stale=self.stale)
        errors = self.tap.errors()
        return Group(view, errors_panel(errors, now)) if errors else view

    async def run(self, quit_event: asyncio.Event | None = None) -> int:
        if not self.console.is_terminal:
            return await self._once()
        quit_event = quit_event or asyncio.Event()

        def on_key(char: str) -> None:
            if char in QUIT_KEYS:
                quit_event.set()

        live = Live(
            console=self.console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with self.tap.exclusive(), live, cbreak_keys(on_key), _quit_on_signals(quit_event):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._poll()), group.create_task(self._draw(live))]
                await quit_event.wait()
                for task in tasks:
                    task.cancel()
        return 0

    async def _once(self) -> int:
        try:
            async with asyncio.timeout(self.once_timeout):
                self.cluster = await self.source.read()
        except TimeoutError:
            self.console.print(self.frame())
            return 1
        self.console.print(self.frame())
        return 0

    async def _poll(self) -> None:
        while True:
            self.cluster = await self.source.read()
            self._polled.set()
            await asyncio.sleep(self.refresh)

    async def _draw(self, live: Live) -> None:
        while True:
            self._polled.clear()
            live.update(self.frame(), refresh=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh):
                    await self._polled.wait()


@contextlib.contextmanager
def _quit_on_signals(quit_event: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``quit_event`` (only possible in the main thread)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, quit_event.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_top_async(
    redis_url: str,
    *,
    refresh: float = 1.0,
    console: Console | None = None,
    no_color: bool = False,
    stale: float = DEFAULT_STALE_AFTER,
    once_timeout: float = 5.0,
    quit_event: asyncio.Event | None = None,
) -> int:
    """The async core of :func:`run_top`; ``quit_event`` lets a caller stop it;
    ``once_timeout`` bounds the single read made without a terminal."""
    from steadfetch.fetcher.errors import ConfigurationError
    from steadfetch.worker.dashboard.source import FetcherSource

    console = console or Console(no_color=no_color or None)  # None: rich reads NO_COLOR
    if no_color:
        console.no_color = True
    try:
        source = FetcherSource.from_url(redis_url)
    except ConfigurationError as exc:
        console.print(f"steadfetch top: {exc}", style="red", highlight=False)
        return 2
    code = 2
    try:
        top = Top(source, console, refresh=refresh, stale=stale, once_timeout=once_timeout)
        code = await top.run(quit_event)
    except* ConfigurationError as group:  # e.g. a wrong password: retrying would not help
        for error in group.exceptions:
            console.print(f"steadfetch top: {error}", style="red", highlight=False)
    finally:
        await source.aclose()
    return code


def run_top(
    redis_url: str,
    *,
    refresh: float = 1.0,
    console: Console | None = None,
    no_color: bool = False,
) -> int:
    """``steadfetch top``: returns 0 after ``q``/Ctrl-C, 2 on a configuration error."""
    try:
        return asyncio.run(
            run_top_async(redis_url, refresh=refresh, console=console, no_color=no_color)
        )
    except KeyboardInterrupt:  # a Ctrl-C that arrived before the signal handler was installed
        return 0
