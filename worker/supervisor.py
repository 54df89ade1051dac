"""``steadfetch run APP --processes N``: N ordinary worker processes, kept running.

A Python process uses one core; the supervisor runs N of them. Each child is the same binary,
``python -m steadfetch.worker run ...`` with the supervisor's own arguments minus ``--processes``,
plus
``--worker-id SUPERVISOR_ID-INDEX`` and ``--supervisor-pid``. The id depends on the index only,
so a child restarted after a crash takes its predecessor's id (the predecessor's pid is gone:
the lease is taken over at once, see fetcher.registry) and adopts the jobs left in its
processing lists at start: nothing waits for a heartbeat to expire.

- A child that dies is restarted after a capped exponential backoff (``fetcher.scheduling.
  job_backoff``: 0.5 s doubling to 30 s; a child that ran for ``STABLE`` s starts again at 0.5 s).
  One WARNING says why it died (exit code or signal name) and how many restarts it has had.
- A child that exits 2 (configuration error: a wrong password, a bad APP...) is not restarted:
  its last error line is repeated, the other children are stopped and the supervisor exits 2.
- SIGTERM/SIGINT are forwarded to every child, which shut down with their usual grace; the
  supervisor exits 0 once all of them did, 128+signum after a second (forwarded) signal, 1 when a
  child had to be killed (still running ``grace + SHUTDOWN_MARGIN`` s after the first signal).
  SIGHUP stops the same way (the children get SIGTERM once), and never forces, however often.
  SIGUSR1 logs the supervisor's state line and is passed on to every child that has started
  (each logs its own); SIGUSR2 is ignored with a line (worker.shutdown).
- Children run in their own process group (a terminal's Ctrl-C reaches the supervisor only, which
  forwards it once: not twice, which would force them). A supervisor that is SIGKILLed leaves no
  orphans: a child asks Linux for SIGHUP when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and
  also polls ``getppid()`` (:func:`watch_parent`), then shuts down gracefully.
- Children's output (stdout and stderr) is relayed line by line, unchanged, to the supervisor's
  stderr, so lines of two children never interleave mid-line. A child whose supervisor is gone
  writes to the supervisor's stderr directly (inherited as ``--supervisor-stderr-fd``).
- Observability: children on consecutive ports (``--metrics-port P``: child i serves /metrics,
  /healthz and /readyz on P+i; with 0 each picks a free port and logs it); each child heartbeats
  under its own id, so ``steadfetch top`` shows one row per child.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from steadfetch.fetcher.scheduling import job_backoff
from steadfetch.worker.config import ConfigError, WorkerConfig
from steadfetch.worker.logs import relay_line
from steadfetch.worker.shutdown import STATE_SIGNAL, Shutdown
from steadfetch.worker.worker import default_worker_id

log = logging.getLogger("worker.supervisor")

#: Backoff before restarting a child that died: RESTART_BASE s, doubling, at most RESTART_CAP s.
RESTART_BASE = 0.5
RESTART_CAP = 30.0
#: A child that ran this long before dying starts the backoff over (it was not crash-looping).
STABLE = 30.0
#: After the first signal, children still running past their grace period plus this are killed.
SHUTDOWN_MARGIN = 5.0
#: How often a child checks that its supervisor is still its parent (the prctl fallback).
PARENT_POLL = 0.5
#: Lines kept per child to quote when it exits 2 (each cut to KEPT_CHARS bytes), and the
#: longest line relayed in one piece.
KEPT_LINES = 20
KEPT_CHARS = 2000
LINE_LIMIT = 1 << 20
EXIT_CONFIG = 2
MAX_PORT = 65535
PR_SET_PDEATHSIG = 1
#: What a child receives when its supervisor dies (see :func:`watch_parent`).
PARENT_GONE = signal.SIGHUP
#: The flags the supervisor sets for its children; the user's values for them are overridden.
PROCESSES_FLAG = "--processes"


def process_count(text: str) -> int:
    """``--processes``: a positive number, or ``auto`` for the cores this process may use."""
    if text.strip().lower() == "auto":
        return len(os.sched_getaffinity(0))
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 1 or 'auto', got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'auto', got {text}")
    return value


def without_processes(argv: Sequence[str]) -> list[str]:
    """``argv`` minus ``--processes N`` / ``--processes=N`` (and argparse's abbreviations of it,
    such as ``--proc 2``: the parser accepted them, so they were unambiguous)."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = token.partition("=")
        if len(name) > 2 and name.startswith("--") and PROCESSES_FLAG.startswith(name):
            skip = not eq
            continue
        out.append(token)
    return out


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``killed by SIGKILL`` (asyncio reports a signal as -signum)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Child:
    """One slot of the supervisor: its index and worker id survive restarts, the process not."""

    def __init__(self, index: int, worker_id: str) -> None:
        self.index = index
        self.worker_id = worker_id
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.failures = 0  # consecutive short-lived runs: the backoff's attempt number
        # The current process has written a line: its logging is set up, which `steadfetch`
        # does after ignoring SIGUSR1 (worker.shutdown.ignore_user_signals), so SIGUSR1 is safe.
        self.speaking = False
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc is not None else None
        return f"<Child {self.index} {self.worker_id} pid={pid} restarts={self.restarts}>"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def error_line(self) -> str:
        """The line that says why it stopped: the last one naming an error, else the last."""
        for line in reversed(self.lines):
            if "error" in line.lower() or "cannot continue" in line:
                return line
        return self.lines[-1] if self.lines else "(it printed nothing)"


class SupervisorShutdown(Shutdown):
    """:class:`Shutdown` that also forwards every SIGTERM/SIGINT to the running children, turns
    a SIGHUP into one SIGTERM for them, and passes SIGUSR1 on."""

    def __init__(self, children: Sequence[Child], state: Callable[[], str] | None = None) -> None:
        super().__init__(state)
        self._children = children

    def on_signal(self, signum: int) -> None:
        super().on_signal(signum)
        for child in self._children:
            signal_child(child, signum)

    def on_hangup(self) -> None:
        """Drain like a first SIGTERM (the hangup alone stopped the supervisor and left its
        children running until the backstop SIGKILLed them: exit 1, their jobs cut). SIGTERM,
        not SIGHUP: a child takes SIGHUP for its supervisor's death (watch_parent)."""
        first = not self.requested.is_set()
        super().on_hangup()
        if first:
            for child in self._children:
                signal_child(child, signal.SIGTERM)

    def on_state_signal(self) -> None:
        super().on_state_signal()
        for child in self._children:
            if child.speaking:  # past its start: it ignores or handles SIGUSR1, never dies of it
                signal_child(child, STATE_SIGNAL)


def signal_child(child: Child, signum: int) -> None:
    if child.proc is not None and child.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(signum)


class Supervisor:
    """Starts ``processes`` children, restarts the ones that die, forwards signals."""

    def __init__(
        self,
        config: WorkerConfig,
        processes: int,
        child_argv: Sequence[str],
        *,
        executable: str = sys.executable,
    ) -> None:
        self.config = config
        self.worker_id = config.worker_id or default_worker_id()
        self.children = [Child(i, f"{self.worker_id}-{i}") for i in range(processes)]
        self.shutdown = SupervisorShutdown(self.children, self._state_line)
        self._argv = [executable, "-m", "steadfetch.worker", *child_argv]
        self._env = {k: v for k, v in os.environ.items() if k != "STEADFETCH_PROCESSES"}
        # Our stderr, for a child to write to directly once we are gone (see watch_parent).
        self._stderr_fd = os.dup(sys.stderr.fileno())
        self.config_failure: Child | None = None
        self.killed: list[Child] = []
        self.unclean: list[str] = []

    def __repr__(self) -> str:
        return f"<Supervisor {self.worker_id} {len(self.children)} children {self.shutdown!r}>"

    async def run(self) -> int:
        log.info(
            "supervisor %s (pid %d) starting %d worker processes: %s",
            self.worker_id,
            os.getpid(),
            len(self.children),
            ", ".join(child.worker_id for child in self.children),
        )
        try:
            with self.shutdown.signal_handlers():
                async with asyncio.TaskGroup() as tg:
                    keepers = [
                        tg.create_task(self._keep(child), name=f"child-{child.index}")
                        for child in self.children
                    ]
                    backstop = tg.create_task(self._backstop(), name="backstop")
                    # Each keeper returns once the shutdown began and its child is reaped.
                    await asyncio.wait(keepers)
                    backstop.cancel()
        finally:
            os.close(self._stderr_fd)
        return self._exit_code()

    def _state_line(self) -> str:
        """The line SIGUSR1 logs: phase and each child's pid and restarts."""
        children = ", ".join(
            f"{child.index} pid {child.proc.pid if child.proc else '-'} "
            f"{'running' if child.running else 'not running'} ({child.restarts} restarts)"
            for child in self.children
        )
        return (
            f"supervisor {self.worker_id} {self.shutdown.phase}: worker processes [{children}]; "
            "SIGUSR1 passed on to each started one"
        )

    def _exit_code(self) -> int:
        if self.config_failure is not None:
            return EXIT_CONFIG
        if self.shutdown.forcing_signal is not None:
            return self.shutdown.exit_code
        if self.killed or self.unclean:
            return 1
        log.info("supervisor %s stopped: every worker process exited 0", self.worker_id)
        return 0

    # -- one child ----------------------------------------------------------------------------

    def _command(self, child: Child) -> list[str]:
        argv = [*self._argv, "--worker-id", child.worker_id, "--supervisor-pid", str(os.getpid())]
        argv += ["--supervisor-stderr-fd", str(self._stderr_fd), "--no-live"]
        port = self.config.metrics_port
        if port is not None:
            argv += ["--metrics-port", str(port + child.index if port else 0)]
        return argv

    async def _keep(self, child: Child) -> None:
        """Run ``child`` until shutdown: start, relay its output, reap, say why, back off."""
        while not self.shutdown.requested.is_set():
            began = time.monotonic()
            child.speaking = False
            child.proc = await asyncio.create_subprocess_exec(
                *self._command(child),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                process_group=0,
                pass_fds=(self._stderr_fd,),
                limit=LINE_LIMIT,
            )
            log.info(
                "worker process %d (%s) started: pid %d%s",
                child.index,
                child.worker_id,
                child.proc.pid,
                f" (restart {child.restarts})" if child.restarts else "",
            )
            if self.shutdown.requested.is_set():  # a signal came while it was being spawned
                signal_child(child, self.shutdown.first_signal or signal.SIGTERM)
            code = await self._relay(child)
            if self.shutdown.requested.is_set():
                self._stopped(child, code)
                return
            if code == EXIT_CONFIG:
                self._config_failure(child)
                return
            ran = time.monotonic() - began
            child.failures = 1 if ran >= STABLE else child.failures + 1
            child.restarts += 1
            delay = job_backoff(child.failures, RESTART_BASE, RESTART_CAP)
            log.warning(
                "worker process %d (%s, pid %d) %s after %.1f s; restarting it in %.1f s "
                "(restart %d)",
                child.index,
                child.worker_id,
                child.proc.pid,
                describe_exit(code),
                ran,
                delay,
                child.restarts,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.shutdown.requested.wait()

    async def _relay(self, child: Child) -> int:
        """Copy the child's output to our stderr, whole lines at a time, until it closes; then
        reap the child and return its exit code."""
        proc = child.proc
        assert proc is not None and proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # end of output
                line = exc.partial
                if not line:
                    break
            except asyncio.LimitOverrunError as exc:  # one huge line: pass it on in pieces
                line = await proc.stdout.readexactly(exc.consumed)
            # Our stderr gone (a closed pipe) or full (nobody reads it) must not stop the relay
            # (the child would block on a full pipe) nor this loop (signals would not be
            # forwarded): like our own records, the line is written by the log writer thread.
            relay_line(line)
            child.speaking = True
            child.lines.append(line[:KEPT_CHARS].decode(errors="replace").rstrip())
        return await proc.wait()

    def _stopped(self, child: Child, code: int) -> None:
        """A child ended after the shutdown began: was that clean?"""
        forwarded = self.shutdown.first_signal or signal.SIGTERM
        # Killed by the forwarded signal itself: it had not installed its handlers yet, so it
        # had not taken a job either.
        if code == 0 or code == -forwarded or child in self.killed:
            return
        if code == self.shutdown.exit_code and self.shutdown.forced.is_set():
            return
        self.unclean.append(f"worker process {child.index} {describe_exit(code)}")
        log.error(
            "worker process %d (%s) %s during the shutdown: %s",
            child.index,
            child.worker_id,
            describe_exit(code),
            child.error_line(),
        )

    def _config_failure(self, child: Child) -> None:
        """Exit 2 is a configuration error: restarting would fail the same way. Stop all."""
        self.config_failure = child
        log.error(
            "worker process %d (%s) exited 2 (configuration error), not restarting it; stopping "
            "the supervisor: %s",
            child.index,
            child.worker_id,
            child.error_line(),
        )
        self.shutdown.request(f"worker process {child.index} has a configuration error")
        for other in self.children:
            signal_child(other, signal.SIGTERM)

    async def _backstop(self) -> None:
        """After the first signal, a child still running past its grace period plus a margin
        is hung (SIGSTOPped, wedged): kill it; its jobs stay in its processing lists, recovered
        by the next worker with its id (the restarted supervisor) or once its heartbeat expires."""
        await self.shutdown.requested.wait()
        await asyncio.sleep(self.config.grace_period + SHUTDOWN_MARGIN)
        for child in self.children:
            if child.running:
                log.error(
                    "worker process %d (%s, pid %d) still running %.1f s after the shutdown "
                    "began (grace period %.1f s): killing it; its unfinished jobs stay in its "
                    "processing lists for recovery",
                    child.index,
                    child.worker_id,
                    child.proc.pid if child.proc else -1,
                    self.config.grace_period + SHUTDOWN_MARGIN,
                    self.config.grace_period,
                )
                self.killed.append(child)
                signal_child(child, signal.SIGKILL)


def supervise(config: WorkerConfig, processes: int, argv: Sequence[str]) -> int:
    """Run a supervisor of ``processes`` children built from ``argv`` (the command line after
    the program name); the exit code."""
    port = config.metrics_port
    if port and port + processes - 1 > MAX_PORT:
        raise ConfigError(
            f"--metrics-port {port} with --processes {processes} needs ports {port}.."
            f"{port + processes - 1} (process i serves on port + i): above {MAX_PORT}"
        )
    return asyncio.run(Supervisor(config, processes, without_processes(argv)).run())


# -- in the child ---------------------------------------------------------------------------


def die_with_parent() -> bool:
    """Ask Linux to send us PARENT_GONE when our parent dies. False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, PARENT_GONE, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


async def watch_parent(
    shutdown: Shutdown, supervisor_pid: int, stderr_fd: int | None = None
) -> None:
    """In a child: shut down gracefully when the supervisor is gone (SIGKILLed, crashed).

    ``prctl(PR_SET_PDEATHSIG)`` delivers PARENT_GONE (SIGHUP), which only requests the graceful
    shutdown, however often it comes; this poll of ``getppid()`` is the fallback (no prctl, or
    the parent died before it was set). Not SIGTERM: Linux sends the parent-death signal when
    the *thread* that forked us exits, and a SIGKILLed supervisor's threads exit one by one, so
    it can arrive twice, and a second SIGTERM means "stop at once" (seen: exit 143, jobs cut).
    Runs until cancelled, so that the handler outlives the request.

    Our output went to the supervisor, which relayed it; ``stderr_fd`` is the supervisor's own
    stderr, inherited: from then on we write there, so the lines of our shutdown are not lost."""

    def gone() -> None:
        if stderr_fd is not None and not shutdown.requested.is_set():
            with contextlib.suppress(OSError):
                os.dup2(stderr_fd, sys.stderr.fileno())
        shutdown.request(f"the supervisor (pid {supervisor_pid}) is gone")

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(PARENT_GONE, gone)
    try:
        armed = die_with_parent()
        log.debug("supervised by pid %d (parent-death signal: %s)", supervisor_pid, armed)
        while os.getppid() == supervisor_pid:  # noqa: ASYNC110  (no event says "parent gone")
            await asyncio.sleep(PARENT_POLL)
        gone()
        await loop.create_future()  # until the worker is done
    finally:
        loop.remove_signal_handler(PARENT_GONE)


async def run_supervised(
    work: Awaitable[int], shutdown: Shutdown, supervisor_pid: int, stderr_fd: int | None = None
) -> int:
    """``await work`` (a worker's run), with :func:`watch_parent` beside it."""
    async with asyncio.TaskGroup() as tg:
        watch = watch_parent(shutdown, supervisor_pid, stderr_fd)
        watcher = tg.create_task(watch, name="parent")
        try:
            return await work
        finally:
            watcher.cancel()
