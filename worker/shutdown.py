"""Signals to shutdown phases: the first SIGTERM/SIGINT asks for a graceful stop, the second forces.

The worker awaits :attr:`Shutdown.requested` to begin draining and :attr:`Shutdown.forced` to
give up on running jobs at once. The exit code follows the usual convention: 0 after a graceful
stop, ``128 + signum`` (130 for SIGINT, 143 for SIGTERM) when a second signal forced it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("worker.shutdown")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# A closed terminal or ssh session: by default it killed the worker without a line (its jobs
# waited for recovery). Now a graceful stop, however often it comes (a hangup is no "stop at
# once"), unless the process was started ignoring it (nohup). A supervised child's parent-death
# handler (worker.supervisor.watch_parent) is installed after this one and replaces it.
HANGUP = signal.SIGHUP


class Shutdown:
    """Which phase the process is in, driven by signals (or by code calling :meth:`request`)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.first_signal: int | None = None
        self.forcing_signal: int | None = None

    def __repr__(self) -> str:
        phase = (
            "forced"
            if self.forced.is_set()
            else "requested"
            if self.requested.is_set()
            else "running"
        )
        return f"<Shutdown {phase}>"

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

    @contextmanager
    def signal_handlers(self) -> Iterator[None]:
        """Route SIGTERM and SIGINT to :meth:`on_signal`, SIGHUP to :meth:`on_hangup` (unless
        ignored, as under nohup), for the duration of the block."""
        loop = asyncio.get_running_loop()
        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        hangup = signal.getsignal(HANGUP) is not signal.SIG_IGN
        if hangup:
            loop.add_signal_handler(HANGUP, self.on_hangup)
        try:
            yield
        finally:
            for sig in HANDLED_SIGNALS:
                loop.remove_signal_handler(sig)
            if hangup:
                loop.remove_signal_handler(HANGUP)
