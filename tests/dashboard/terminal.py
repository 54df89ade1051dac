"""Helpers for the dashboard's end-to-end tests: a private tmux server, the ``steadfetch``
binary, and skipping (failing under CI=true) when one of them is missing."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures import IN_CI
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
STEADFETCH = Path(sys.executable).with_name("steadfetch")
APP = "tests.dashboard.e2e_app:app"
# A worker that beats every 0.5 s and retries at most 0.5 s apart, so the tests stay short.
FAST_WORKER = ["--heartbeat-interval", "0.5", "--retry-base", "0.1", "--retry-cap", "0.5"]


# The connection panel's retry line, with real figures (a "-" means a figure is unknown).
RETRY_LINE = re.compile(r"down for \d+(?:\.\d)? s +attempt (\d+) +next retry in \d+(?:\.\d)? s")


def retry_attempt(screen: str) -> int | None:
    """The attempt number on the panel's retry line when every figure is shown, else None."""
    found = RETRY_LINE.search(screen)
    return int(found.group(1)) if found else None


def missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def run_env() -> dict[str, str]:
    # PYTHONPATH: the worker imports the test App (tests.dashboard.e2e_app) from the checkout.
    return {**os.environ, "PYTHONPATH": str(REPO)}


def require_steadfetch(command: str = "run") -> None:
    """Skip (fail under CI) unless ``steadfetch COMMAND --help`` works."""
    probe = subprocess.run(
        [str(STEADFETCH), command, "--help"], capture_output=True, env=run_env(), timeout=30
    )
    if probe.returncode != 0:
        tail = probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
        missing(f"`steadfetch {command}` is not available yet: {tail}")


class Tmux:
    """One private tmux server (its own socket): sessions of a fixed size, screen captures."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.socket = f"steadfetch-dash-{os.getpid()}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, "-L", self.socket, *args],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return done.stdout

    def start(self, name: str, argv: list[str]) -> None:
        """Run ``argv`` in a new 100x40 session, under :mod:`tests.dashboard.report_exit`."""
        self("new-session", "-d", "-x", "100", "-y", "40", "-s", name, "-c", str(REPO),
             "-e", f"PYTHONPATH={REPO}", "-e", "PYTHONFAULTHANDLER=1",
             sys.executable, "-m", "tests.dashboard.report_exit", *argv)  # fmt: skip

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name)

    def wait_for(
        self, name: str, check: Callable[[str], bool], what: str, within: float = 20.0
    ) -> str:
        """Poll the pane until ``check(screen)`` holds; on timeout show the last screen."""
        last = ""

        def probe() -> str | None:
            nonlocal last
            last = self.screen(name)
            return last if check(last) else None

        try:
            return wait_for(what, probe, within, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"no {what} on screen within {within} s; last screen:\n{last}"
            ) from None

    def exit_status(self, name: str, within: float = 20.0) -> int:
        """Wait for the command to end and return its exit status (negative: killed by that
        signal). Still running after ``within``: SIGABRT makes faulthandler print every
        thread's stack, and that is shown in the failure."""
        try:
            screen = self.wait_for(name, lambda s: "[exit status " in s, "exit status", within)
        except AssertionError:
            pane = int(self("display-message", "-p", "-t", name, "#{pane_pid}"))
            ps = subprocess.run(["ps", "-o", "pid,stat,wchan:24,cmd", "--ppid", str(pane)],
                                capture_output=True, text=True).stdout  # fmt: skip
            for line in ps.splitlines()[1:]:
                os.kill(int(line.split()[0]), signal.SIGABRT)
            with contextlib.suppress(AssertionError):
                self.wait_for(name, lambda s: "[exit status " in s, "stack dump", within=5)
            history = self("capture-pane", "-p", "-S", "-300", "-t", name)
            raise AssertionError(
                f"{name} still running after {within} s:\n{ps}\n{history}"
            ) from None
        return int(screen.split("[exit status ", 1)[1].split("]", 1)[0])

    def close(self) -> None:
        subprocess.run([self.binary, "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)  # fmt: skip
