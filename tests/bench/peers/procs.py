"""Child processes of the peers benchmark: started in their own session, measured, stopped by pid.

Every child is a session leader (``start_new_session``), so its process group id is its pid and
``killpg(pid)`` reaches the workers it forks (Celery's prefork pool, rq's work horses) and
nothing else. :class:`Children` stops every child it started when its ``with`` block ends,
whatever happened inside it: SIGTERM, then SIGKILL after a grace period.

RSS and CPU are read from ``/proc`` for the whole process tree under a child, so a forking
worker's children count: CPU is utime+stime of every live process in the tree plus
cutime+cstime (children already reaped by their parent), which counts each CPU second once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
HAS_CHILDREN_FILE = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the ``(comm)`` field (index 0 = state), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].decode().split()


def tree(root: int) -> list[int]:
    """``root`` and every descendant that is alive now.

    Walks ``/proc/PID/task/TID/children`` (cheap: only the tree is read) where the kernel has
    that file, else scans all of ``/proc``. A process that ends while being read is skipped.
    """
    if not HAS_CHILDREN_FILE:
        return _tree_by_scan(root)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                kids = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            continue  # ended meanwhile
        found.append(pid)
    return found


def _tree_by_scan(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def sample(root: int) -> tuple[int, float]:
    """(RSS bytes summed over the tree, CPU seconds used by the tree so far)."""
    rss, ticks = 0, 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # stat(5): utime=14 stime=15 cutime=16 cstime=17 rss=24 (1-based, comm=2, state=3)
        ticks += sum(int(f) for f in fields[11:15])
        rss += int(fields[21]) * PAGE
    return rss, ticks / TICKS


def pss(root: int) -> int:
    """Proportional set size of the tree in bytes: shared pages split among their sharers, so a
    forking worker's copy-on-write pages count once (an RSS sum counts them per process).
    Costs about 0.15 ms per process: sample it less often than :func:`sample`."""
    total = 0
    for pid in tree(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


class Child:
    """One started process. ``stop()`` ends its process group; it is safe to call twice."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path | None) -> None:
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"<Child {self.name} pid {self.pid}>"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL it after ``grace`` s; the exit code (None if unreaped)."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            _killpg_quietly(self.pid, sig)  # ProcessLookupError: the whole group is gone
            try:
                self.popen.wait(wait)
                _killpg_quietly(self.pid, signal.SIGKILL)  # orphans left in the group
                break
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + 5.0  # signals land asynchronously: see the group gone
        while group_members(self.pid) and time.monotonic() < deadline:
            _killpg_quietly(self.pid, signal.SIGKILL)
            time.sleep(0.01)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()
        return self.popen.returncode

    def ask(self, line: str, timeout: float) -> bytes:
        """Write ``line`` to the child's stdin and return its next stdout line (or raise)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()
        return self.read_line(timeout)

    def read_line(self, timeout: float) -> bytes:
        stdout = self.popen.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"{self.name} (pid {self.pid}) said nothing for {timeout:.0f} s")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} (pid {self.pid}) exited: {self.log_tail()}")
        return line

    def log_tail(self, lines: int = 5) -> str:
        if self.log_path is None:
            return "(no log)"
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


def _killpg_quietly(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Children:
    """Starts children and stops every one of them on exit, in reverse order."""

    def __init__(self) -> None:
        self._started: list[Child] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_path: Path | None = None,
        pipes: bool = False,
    ) -> Child:
        """Start ``argv``; its stderr (and stdout unless ``pipes``) go to ``log_path``."""
        log: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        child = Child(name, popen, log_path)
        self._started.append(child)
        return child

    def run(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path,
            log_path: Path, timeout: float) -> bytes:  # fmt: skip
        """Start ``argv``, wait for it within ``timeout`` and return its last stdout line."""
        child = self.start(name, argv, env=env, cwd=cwd, log_path=log_path, pipes=True)
        deadline = time.monotonic() + timeout
        last = b""
        try:
            while True:
                line = child.read_line(max(0.1, deadline - time.monotonic()))
                last = line.strip() or last
        except RuntimeError:  # EOF: it exited
            pass
        child.popen.wait(max(0.1, deadline - time.monotonic()))
        if child.popen.returncode != 0:
            raise RuntimeError(f"{name} exited {child.popen.returncode}: {child.log_tail()}")
        return last

    def __enter__(self) -> Children:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        while self._started:
            self._started.pop().stop()
