"""The worker under test: the real ``steadfetch run`` binary as a child process.

Its output (JSON log lines on stderr) is read line by line, written to a log file, and recorded
in the history as ``log`` operations stamped on arrival; its memory is sampled from
``/proc/PID/status``; its exit code is recorded as ``worker-exit``. A signal sent through
:meth:`WorkerProcess.signal` is recorded first, with the rule its exit is judged by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.history import History

RSS_INTERVAL = 0.5
LINE_LIMIT = 4 * 1024 * 1024  # a JSON log line carries its traceback
TEXT_LINE = re.compile(r"^\S+Z (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$")


#: The ``steadfetch`` console script installed beside this interpreter (the one definition: the
#: worker tests' harness and the chaos tests run it too).
STEADFETCH = Path(sys.executable).with_name("steadfetch")


def steadfetch_binary() -> list[str]:
    """The console script next to this interpreter, else ``python -m worker``."""
    return [str(STEADFETCH)] if STEADFETCH.exists() else [sys.executable, "-m", "worker"]


@dataclass(frozen=True)
class Launcher:
    """How the worker under test is started: the one place that builds its command and its
    environment. The default runs this checkout's ``steadfetch``; the mutation tool passes one
    that runs a mutated copy (``command=(python, "-m", "worker")``, ``env={"PYTHONPATH": ...}``).
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
    """One ``steadfetch run`` process, named ``name`` in the history (``worker-1``...)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        history: History,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.facts = dict(facts or {})
        """Recorded with ``worker-start`` for the checkers (what it can hold, its TTL...)."""
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.history = history
        self.exited = asyncio.Event()
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._last_signal_at: float | None = None

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.name} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and not self.exited.is_set()

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            limit=LINE_LIMIT,
        )
        self.history.record(
            self.name,
            "worker-start",
            "ok",
            pid=self._proc.pid,
            worker_id=self.env.get("STEADFETCH_WORKER_ID"),
            argv=self.argv[1:],
            **self.facts,
        )

    async def run(self) -> None:
        """Follow the process until it exits: log lines, memory samples, then the exit code."""
        assert self._proc is not None, "start() first"
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump_logs())
            sampler = tg.create_task(self._sample_rss())
            code = await self._proc.wait()
            sampler.cancel()
        self.returncode = code
        after = None if self._last_signal_at is None else time.time() - self._last_signal_at
        self.history.record(
            self.name, "worker-exit", "ok" if code == 0 else "info", code=code, after=after
        )
        self.exited.set()

    def signal(self, sig: signal.Signals, *, expect_codes: Sequence[int], within: float) -> None:
        """Send ``sig``, recording the rule: exit with one of ``expect_codes`` in ``within`` s."""
        if self._proc is None or self.exited.is_set():
            return
        self.history.record(
            "nemesis",
            "signal",
            "ok",
            target=self.name,
            signal=sig.name,
            pid=self._proc.pid,
            expect_codes=list(expect_codes),
            within=within,
        )
        self._last_signal_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._proc.pid, sig)

    async def wait_exit(self, limit: float) -> bool:
        """Wait (with a deadline) for the exit; True when it exited."""
        try:
            await asyncio.wait_for(self.exited.wait(), limit)
        except TimeoutError:
            return False
        return True

    async def stop(self, *, grace: float) -> None:
        """SIGTERM, expecting exit 0 within ``grace`` + 5 s; SIGKILL if it did not exit."""
        within = grace + 5.0
        self.signal(signal.SIGTERM, expect_codes=[0], within=within)
        if not await self.wait_exit(within + 2.0):
            self.kill_now()
            await self.wait_exit(10.0)

    def kill_now(self) -> None:
        """Cleanup: SIGKILL without a rule (used only when the process must go, whatever it did)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)

    async def _pump_logs(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            while True:
                raw = await self._proc.stdout.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace")
                log.write(line)
                log.flush()
                self.history.record(self.name, "log", "ok", **parse_log_line(line))

    async def _sample_rss(self) -> None:
        assert self._proc is not None
        while True:
            rss = read_rss(self._proc.pid)
            if rss is not None:
                self.history.record(self.name, "rss", "ok", rss=rss)
            await asyncio.sleep(RSS_INTERVAL)
