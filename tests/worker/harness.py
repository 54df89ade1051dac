"""The real ``steadfetch`` binary as a child process (:class:`WorkerUnderTest`), and polling
helpers with deadlines.

Tests never sleep to synchronise: they poll the worker's log file, the record file written by
the handlers in :mod:`tests.worker.apps`, or Redis itself (redis-py as an independent oracle),
each with a generous deadline that only a hang can exceed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steadfetch.chaos.workload.process import STEADFETCH, WorkerProcess
from steadfetch.worker.options import ENV_PREFIX
from tests.polling import DEADLINE, wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.worker.apps:app"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``STEADFETCH_*`` setting (a developer's shell must
    not change what a test sees), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """``steadfetch ARGS`` run to its end (60 s at most): exit code, stdout and stderr as text."""
    return subprocess.run(
        [str(STEADFETCH), *args],
        cwd=ROOT, env=env, stdin=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class WorkerUnderTest(WorkerProcess):
    """The one worker process model (:class:`chaos.workload.process.WorkerProcess`), run
    synchronously, plus what the worker tests wait for in its log (polled with a deadline)."""

    def wait_log(self, pattern: str, timeout: float = DEADLINE, count: int = 1) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) has matched ``count`` times in the log."""

        def probe() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log))
            if len(matches) >= count:
                return matches[count - 1]
            if (code := self.poll()) is not None:
                raise AssertionError(f"worker exited ({code}) before logging {pattern!r}")
            return None

        try:
            return wait_for(f"log line {pattern!r}", probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log}") from None

    def started(self) -> WorkerUnderTest:
        self.wait_log(r"worker \S+ started")
        return self

    def health_port(self) -> int:
        """The port ``--metrics-port 0`` bound, from the worker's log."""
        return int(self.wait_log(r"metrics and health on http://127\.0\.0\.1:(\d+)").group(1))

    def wait(self, timeout: float = DEADLINE) -> int:
        return super().wait(timeout)

    def stop(self, timeout: float = DEADLINE) -> int:
        return super().stop(timeout)


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on the worker's health/metrics port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
