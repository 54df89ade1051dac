"""The nemesis: the fault catalogue, acting on a :class:`chaos.env.Stack` in either environment.

A fault is three steps: ``apply`` (returns what it did, in words), ``hold`` (the fault lasts),
``heal`` (undo it, returns what it did). :func:`run_fault` records ``fault-start`` and
``fault-stop`` in the history and always heals in a ``finally``, even when the scenario fails or
is cancelled; the runner heals the whole stack once more in its own teardown.

Flags recorded with ``fault-start`` tell the checkers how to judge the window:

- ``ambiguous``: replies may be lost (a duplicate after it is allowed under at-least-once);
- ``outage``: the worker must log a descriptive error line during it;
- ``recovery_line``: the worker must log that Redis is reachable again after it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from chaos.env.stack import Stack
from chaos.env.toxiproxy import Stream
from chaos.history import History, Op
from chaos.workload.process import WorkerProcess

POLL = 0.05
T = TypeVar("T")


class Target(Protocol):
    """What a fault can act on: the stack, the current worker, the workload."""

    stack: Stack
    history: History
    rng: random.Random
    job_timeout: float
    grace_period: float

    @property
    def worker(self) -> WorkerProcess: ...

    async def start_worker(self) -> WorkerProcess: ...

    def in_flight(self) -> int: ...

    def started(self, job_id: str) -> bool: ...

    def logged(self, pattern: str, since: float) -> bool:
        """Whether the current worker logged a line matching ``pattern`` after ``since``."""
        ...

    async def enqueue(self, **kwargs: Any) -> str: ...


async def wait_for(condition: Callable[[], bool], limit: float, what: str) -> None:
    """Poll ``condition`` until true; TimeoutError naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {limit:.0f} s")
        await asyncio.sleep(POLL)


def blocking(fn: Callable[[], T]) -> Awaitable[T]:
    """Stack controls are blocking (HTTP, docker, process waits): run them off the event loop."""
    return asyncio.to_thread(fn)


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    duration: float = 6.0
    ambiguous: bool = True
    outage: bool = True
    recovery_line: bool = True

    async def apply(self, t: Target) -> str:
        raise NotImplementedError

    async def hold(self, t: Target) -> None:
        await asyncio.sleep(self.duration)

    async def heal(self, t: Target) -> str:
        await blocking(t.stack.heal)
        return "healed the stack"


async def run_fault(fault: Fault, t: Target) -> None:
    """Apply, hold and (always) heal ``fault``, recording start and stop in the history."""
    started = time.time()
    flags = {
        "fault": fault.name,
        "ambiguous": fault.ambiguous,
        "outage": fault.outage,
        "recovery_line": fault.recovery_line,
    }
    try:
        try:
            did = await fault.apply(t)
        except BaseException as exc:
            t.history.add(
                Op(started, "nemesis", "fault-start", "info", {**flags, "did": f"apply: {exc!r}"})
            )
            raise
        t.history.add(Op(started, "nemesis", "fault-start", "ok", {**flags, "did": did}))
        await fault.hold(t)
    finally:
        try:
            healed = await fault.heal(t)
        except BaseException as exc:
            t.history.record("nemesis", "fault-stop", "info", fault=fault.name, did=repr(exc))
            raise
        t.history.record("nemesis", "fault-stop", "ok", fault=fault.name, did=healed)


# --- network faults (Toxiproxy) ------------------------------------------------------------


@dataclass(frozen=True)
class Cut(Fault):
    """The proxy is disabled: its listener closes and every connection through it drops."""

    async def apply(self, t: Target) -> str:
        await blocking(t.stack.proxy.disable)
        return "disabled the proxy (connections dropped, new ones refused)"


@dataclass(frozen=True)
class Toxic(Fault):
    """One Toxiproxy toxic on the proxy, on one stream, for ``duration`` seconds.

    With ``soft_heal`` the heal sets the toxic's toxicity to 0 instead of removing it: open
    connections stay open (removing a ``timeout`` toxic would close them, which heals a half-open
    socket for the client). What was dropped stays lost, so a client must notice by its own read
    timeout. The toxic itself is removed by the runner's final heal.
    """

    toxic: str = "latency"
    stream: Stream = "downstream"
    attributes: dict[str, float] = field(default_factory=dict)
    soft_heal: bool = False

    @property
    def toxic_name(self) -> str:
        return f"{self.name}_{self.stream}"

    async def apply(self, t: Target) -> str:
        attributes: dict[str, Any] = dict(self.attributes)
        await blocking(
            lambda: t.stack.proxy.add_toxic(
                self.toxic, stream=self.stream, name=self.toxic_name, **attributes
            )
        )
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"added toxic {self.toxic} ({attrs}) on {self.stream}"

    async def heal(self, t: Target) -> str:
        if not self.soft_heal:
            return await super().heal(t)
        await blocking(lambda: t.stack.proxy.update_toxic(self.toxic_name, toxicity=0))
        return "set the toxic's toxicity to 0: connections stay open, dropped data stays lost"


@dataclass(frozen=True)
class Flapping(Fault):
    """The link is cut and restored at random intervals of ``period`` ± 50 % for ``duration``."""

    period: float = 1.0

    async def apply(self, t: Target) -> str:
        return f"flapping the proxy every ~{self.period:.1f} s for {self.duration:.0f} s"

    async def hold(self, t: Target) -> None:
        end = time.monotonic() + self.duration
        enabled = True
        while time.monotonic() < end:
            enabled = not enabled
            await blocking(t.stack.proxy.enable if enabled else t.stack.proxy.disable)
            await asyncio.sleep(self.period * (0.5 + t.rng.random()))


# --- Redis faults --------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisDown(Fault):
    """Redis stops (SIGTERM, or SIGKILL with ``kill``) and starts again on heal (AOF is on)."""

    kill: bool = False

    async def apply(self, t: Target) -> str:
        await blocking(t.stack.redis.kill if self.kill else t.stack.redis.stop)
        return "SIGKILLed redis-server" if self.kill else "stopped redis-server (SIGTERM)"

    async def heal(self, t: Target) -> str:
        await blocking(t.stack.heal)
        return "started redis-server again (same port and AOF) and healed the stack"


@dataclass(frozen=True)
class RedisPause(Fault):
    """SIGSTOP: connections stay open and are accepted by the kernel, nothing answers."""

    async def apply(self, t: Target) -> str:
        await blocking(t.stack.redis.pause)
        return "SIGSTOPped redis-server"

    async def heal(self, t: Target) -> str:
        await blocking(t.stack.heal)
        return "SIGCONTed redis-server"


# --- worker faults -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerFault(Fault):
    """A fault that ends the current worker; the heal starts its replacement."""

    ambiguous: bool = False
    outage: bool = False
    recovery_line: bool = False

    async def heal(self, t: Target) -> str:
        await blocking(t.stack.heal)
        new = await t.start_worker()
        return f"healed the stack, started {new.name}"

    async def jobs_in_flight(self, t: Target) -> int:
        """Wait (with a deadline) until jobs are running, so the fault catches some mid-batch."""
        await wait_for(lambda: t.in_flight() > 0, 10.0, "waiting for jobs in flight")
        return t.in_flight()


@dataclass(frozen=True)
class KillWorker(WorkerFault):
    """SIGKILL the worker while jobs are running, then start a new one."""

    duration: float = 1.0

    async def apply(self, t: Target) -> str:
        running = await self.jobs_in_flight(t)
        t.worker.signal(signal.SIGKILL, expect_codes=[-9], within=5.0)
        await t.worker.wait_exit(10.0)
        return f"SIGKILLed {t.worker.name} (pid {t.worker.pid}) with {running} jobs in flight"


@dataclass(frozen=True)
class SignalDuringOutage(WorkerFault):
    """Cut the link, then signal the worker. SIGTERM: it must still exit 0 within its grace
    period. SIGKILL: its jobs must be recovered by the next worker once the link is back."""

    ambiguous: bool = True
    outage: bool = True
    duration: float = 2.0
    kill: bool = False

    async def apply(self, t: Target) -> str:
        await blocking(t.stack.proxy.disable)
        return "disabled the proxy"

    async def hold(self, t: Target) -> None:
        since = max(op.time for op in t.history.ops() if op.f == "fault-start")
        # The outage is under way once the worker says so; then let it retry for a while.
        await wait_for(lambda: t.logged(r"unreachable", since), 10.0, "the worker noticing")
        await asyncio.sleep(self.duration)
        within = 5.0 if self.kill else t.grace_period + 5.0
        sig = signal.SIGKILL if self.kill else signal.SIGTERM
        t.worker.signal(sig, expect_codes=[-9] if self.kill else [0], within=within)
        await t.worker.wait_exit(within + 2.0)


@dataclass(frozen=True)
class DoubleTerm(WorkerFault):
    """Two SIGTERMs while jobs run: the second forces the exit at once (128 + signum, or 130);
    in reliable mode the unfinished jobs stay in the processing list for the next worker."""

    duration: float = 0.5

    async def apply(self, t: Target) -> str:
        running = await self.jobs_in_flight(t)
        forced = [128 + signal.SIGTERM, 130]
        t.worker.signal(signal.SIGTERM, expect_codes=forced, within=3.0)
        await asyncio.sleep(0.3)  # the first signal is being handled: jobs are still running
        t.worker.signal(signal.SIGTERM, expect_codes=forced, within=3.0)
        await t.worker.wait_exit(5.0)
        return f"sent {t.worker.name} two SIGTERMs 0.3 s apart with {running} jobs running"


@dataclass(frozen=True)
class SlowJobDuringCut(Fault):
    """A job that outlives its timeout while the link is cut: the timeout must still fire and
    the job be retried (and finish) once Redis is back."""

    async def apply(self, t: Target) -> str:
        job_id = await t.enqueue(slow=t.job_timeout * 4)
        t.history.record("nemesis", "expect-timeout", "ok", job_id=job_id, timeout=t.job_timeout)
        await wait_for(lambda: t.started(job_id), 10.0, f"waiting for {job_id} to start")
        await blocking(t.stack.proxy.disable)
        return (
            f"{job_id} (sleeps {t.job_timeout * 4:.0f} s, timeout {t.job_timeout:.0f} s) "
            "running; disabled the proxy"
        )
