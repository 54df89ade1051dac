"""The real ``steadfetch`` binary as a child process, and polling helpers with deadlines.

Tests never sleep to synchronise: they poll the worker's log file, the record file written by
the handlers in :mod:`tests.worker.apps`, or Redis itself (redis-py as an independent oracle),
each with a generous deadline that only a hang can exceed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.workload.process import STEADFETCH
from tests.polling import DEADLINE, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.worker.apps:app"


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class WorkerProcess:
    """``steadfetch ARGS`` with stderr in a log file; killed at teardown if still running."""

    def __init__(self, args: Sequence[str], *, log_path: Path, env: dict[str, str]) -> None:
        self.args = [str(STEADFETCH), *args]
        self.log_path = log_path
        self._log_file = log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
        )

    def __repr__(self) -> str:
        return f"<WorkerProcess pid={self.proc.pid} rc={self.proc.poll()}>"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = DEADLINE, count: int = 1) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) has matched ``count`` times in the log."""

        def probe() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log))
            if len(matches) >= count:
                return matches[count - 1]
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise AssertionError(f"worker exited ({code}) before logging {pattern!r}")
            return None

        try:
            return wait_for(f"log line {pattern!r}", probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log}") from None

    def started(self) -> WorkerProcess:
        self.wait_log(r"worker \S+ started")
        return self

    def health_port(self) -> int:
        """The port ``--metrics-port 0`` bound, from the worker's log."""
        return int(self.wait_log(r"metrics and health on http://127\.0\.0\.1:(\d+)").group(1))

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # PYTHONFAULTHANDLER is set: SIGABRT makes the hung worker print every stack.
            self.signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            raise AssertionError(f"worker did not exit within {timeout} s:\n{self.log}") from None

    def stop(self, timeout: float = DEADLINE) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on the worker's health/metrics port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
