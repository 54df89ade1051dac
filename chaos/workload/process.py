"""The worker under test: the real ``steadfetch`` binary as a child process (the one definition).

Its output (stdout and stderr) goes to a log file. Two ways to follow it, one process model:

- the chaos runner awaits :meth:`WorkerProcess.run`, which follows the log file line by line
  and records each line in the history as a ``log`` operation stamped on arrival (within
  :data:`FOLLOW_INTERVAL`), samples memory from ``/proc/PID/status`` and records the exit code
  as ``worker-exit``; a signal sent through :meth:`WorkerProcess.signal` with a rule
  (``expect_codes``, ``within``) is recorded first, with the rule its exit is judged by;
- the worker tests (``tests/worker/harness.py``) use it synchronously: :meth:`~WorkerProcess.wait`,
  :meth:`~WorkerProcess.stop`, :meth:`~WorkerProcess.close` and the log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from steadfetch.chaos.history import History

RSS_INTERVAL = 0.5
#: How often :meth:`WorkerProcess.run` looks for new log lines and for the exit.
FOLLOW_INTERVAL = 0.02
TEXT_LINE = re.compile(r"^\S+Z (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$")


#: The ``steadfetch`` console script installed beside this interpreter (the one definition: the
#: worker tests' harness and the chaos tests run it too).
STEADFETCH = Path(sys.executable).with_name("steadfetch")


def steadfetch_binary() -> list[str]:
    """The console script next to this interpreter, else ``python -m steadfetch.worker``."""
    return [str(STEADFETCH)] if STEADFETCH.exists() else [sys.executable, "-m", "steadfetch.worker"]


@dataclass(frozen=True)
class Launcher:
    """How the worker under test is started: the one place that builds its command and its
    environment. The default runs this checkout's ``steadfetch``; the mutation tool passes one
    that runs a mutated copy (``command=(python, "-m", "steadfetch.worker")``,
    ``env={"PYTHONPATH": ...}``).
    """

    command: tuple[str, ...] = ()
    """The program and its leading arguments (``steadfetch_binary()`` when empty)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to (and overriding) this process's environment."""

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*(self.command or steadfetch_binary()), *args]

    def environ(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        return env


def parse_log_line(line: str) -> dict[str, Any]:
    """A JSON log record, a text-format line, or anything else (level ``RAW``)."""
    text = line.rstrip("\n")
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(entry, dict):
                return {
                    "level": str(entry.get("level", "")),
                    "logger": str(entry.get("logger", "")),
                    "message": str(entry.get("message", entry.get("msg", ""))),
                }
    match = TEXT_LINE.match(text)
    if match:
        return match.groupdict()
    return {"level": "RAW", "logger": "", "message": text}


def read_rss(pid: int) -> int | None:
    """Resident set size in bytes, or None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) * 1024 if match else None


class WorkerProcess:
    """One ``steadfetch`` process (``argv``), named ``name`` (``worker-1``... in the history).

    Nothing runs until :meth:`spawn`. ``history`` is the chaos run's (None in the worker tests:
    nothing is recorded); ``facts`` are recorded with ``worker-start`` for the checkers (what it
    can hold, its TTL...). :meth:`close` kills it if it still runs and closes the log file.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        history: History | None = None,
        facts: Mapping[str, Any] | None = None,
        *,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.facts = dict(facts or {})
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.history = history
        self.cwd = cwd
        self.exited = asyncio.Event()
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_start = 0
        self._last_signal_at: float | None = None

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.name} pid={self.pid} rc={self.poll()}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and not self.exited.is_set()

    @property
    def log(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text(errors="replace")

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or before :meth:`spawn`)."""
        return self._proc.poll() if self._proc is not None else None

    def spawn(self) -> WorkerProcess:
        """Start the process (in a session of its own, output appended to the log file)."""
        self._log_file = self.log_path.open("ab")
        self._log_start = self._log_file.tell()
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.history is not None:
            self.history.record(
                self.name,
                "worker-start",
                "ok",
                pid=self._proc.pid,
                worker_id=self.env.get("STEADFETCH_WORKER_ID"),
                argv=self.argv[1:],
                **self.facts,
            )
        return self

    def signal(
        self,
        sig: signal.Signals | int,
        *,
        expect_codes: Sequence[int] | None = None,
        within: float | None = None,
    ) -> None:
        """Send ``sig``; with a rule (chaos), record it first: exit with one of
        ``expect_codes`` within ``within`` s."""
        if self._proc is None or self.poll() is not None:
            return
        if self.history is not None and expect_codes is not None:
            self.history.record(
                "nemesis",
                "signal",
                "ok",
                target=self.name,
                signal=signal.Signals(sig).name,
                pid=self._proc.pid,
                expect_codes=list(expect_codes),
                within=within,
            )
        self._last_signal_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, sig)

    # -- synchronous use (the worker tests) ----------------------------------------------------

    def wait(self, timeout: float) -> int:
        """The exit code, waiting up to ``timeout`` s; a hung process is made to print every
        stack (SIGABRT: the tests set PYTHONFAULTHANDLER) and the wait fails with its log."""
        assert self._proc is not None, "spawn() first"
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
            raise AssertionError(f"worker did not exit within {timeout} s:\n{self.log}") from None

    def stop(self, timeout: float) -> int:
        """SIGTERM and wait; the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        """Kill it if it still runs; close the log file."""
        self.kill_now()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()

    # -- asynchronous use (the chaos runner) ---------------------------------------------------

    async def start(self) -> None:
        """:meth:`spawn`, for the runner (then it runs :meth:`run` in its task group)."""
        self.spawn()

    async def run(self) -> None:
        """Follow the process until it exits: log lines, memory samples, then the exit code."""
        assert self._proc is not None, "start() first"
        next_sample = 0.0
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            pending = b""
            while True:
                code = self._proc.poll()  # first: every line written before the exit is read
                pending = self._record_lines(pending + log.read(), done=code is not None)
                if code is not None:
                    break
                if (now := time.monotonic()) >= next_sample:
                    next_sample = now + RSS_INTERVAL
                    if (rss := read_rss(self._proc.pid)) is not None and self.history:
                        self.history.record(self.name, "rss", "ok", rss=rss)
                await asyncio.sleep(FOLLOW_INTERVAL)
        self.returncode = code
        after = None if self._last_signal_at is None else time.time() - self._last_signal_at
        if self.history is not None:
            self.history.record(
                self.name, "worker-exit", "ok" if code == 0 else "info", code=code, after=after
            )
        self.exited.set()

    def _record_lines(self, data: bytes, *, done: bool) -> bytes:
        """Record the complete lines of ``data``; return the incomplete rest (none if done)."""
        lines = data.split(b"\n")
        rest = lines.pop()
        if done and rest:  # the last line of a process that ended without a newline
            lines.append(rest)
            rest = b""
        if self.history is not None:
            for raw in lines:
                line = raw.decode("utf-8", errors="replace")
                self.history.record(self.name, "log", "ok", **parse_log_line(line))
        return rest

    async def wait_exit(self, limit: float) -> bool:
        """Wait (with a deadline) for the exit; True when it exited."""
        try:
            await asyncio.wait_for(self.exited.wait(), limit)
        except TimeoutError:
            return False
        return True

    async def terminate(self, *, grace: float) -> None:
        """SIGTERM, expecting exit 0 within ``grace`` + 5 s; SIGKILL if it did not exit."""
        within = grace + 5.0
        self.signal(signal.SIGTERM, expect_codes=[0], within=within)
        if not await self.wait_exit(within + 2.0):
            self.kill_now()
            await self.wait_exit(10.0)

    def kill_now(self) -> None:
        """Cleanup: SIGKILL without a rule (used only when the process must go, whatever it did)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)
