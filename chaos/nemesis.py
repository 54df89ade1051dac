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
import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from steadfetch.chaos.env.stack import Stack
from steadfetch.chaos.env.toxiproxy import Stream
from steadfetch.chaos.history import History, Op
from steadfetch.chaos.workload.process import WorkerProcess

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

    workers: list[WorkerProcess]

    async def start_worker(self, worker_id: str | None = None) -> WorkerProcess: ...

    def in_flight(self) -> int: ...

    def started(self, job_id: str) -> bool: ...

    def logged(self, pattern: str, since: float, process: str | None = None) -> bool:
        """Whether ``process`` (the current worker) logged a line matching ``pattern`` after
        ``since``."""
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
    noisy: bool | None = None
    """Failure lines may appear (None: only if it is an outage)."""
    restarts_worker: bool = False
    """The heal starts a new worker process (recovery then includes its start-up)."""
    progress: bool = False
    """Work must go on during the fault (it degrades, never stops, the worker)."""
    rolls_back: bool = False
    """Redis itself may undo acknowledged writes (a failover: replication is asynchronous), so
    a worker's lists can hold again what it had settled: bounds on them do not hold here."""

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
        "noisy": fault.outage if fault.noisy is None else fault.noisy,
        "progress": fault.progress,
        "rolls_back": fault.rolls_back,
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
    restarts_worker: bool = True

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
class TermWorker(WorkerFault):
    """SIGTERM the worker while jobs are running (it must drain and exit 0), then start a new
    one. A graceful exit holds nothing back: a job run again afterwards is a bug (e.g. a
    shutdown that forgets its last ack flush, so finished jobs go back to the queue).

    With ``pause_writes`` (seconds), ``CLIENT PAUSE WRITE`` lands just before the signal: the ack
    batch in flight waits in Redis, so every job finishing meanwhile is still waiting to be acked
    when the drain ends, and only the shutdown's last flush (once the pause is over, within the
    grace period) acks it. Without the pause, whether any ack is unsent then is a race: a 200 ms
    latency toxic, either way, left the last job's ack already sent in 1 run of 6.
    """

    duration: float = 1.0
    pause_writes: float = 0.0

    async def apply(self, t: Target) -> str:
        running = await self.jobs_in_flight(t)
        paused = ""
        if self.pause_writes:
            ms = int(self.pause_writes * 1000)
            await blocking(lambda: _run(t, "CLIENT", "PAUSE", ms, "WRITE"))
            paused = f", writes paused for {ms} ms (CLIENT PAUSE WRITE)"
        within = t.grace_period + 5.0
        t.worker.signal(signal.SIGTERM, expect_codes=[0], within=within)
        await t.worker.wait_exit(within + 2.0)
        return (
            f"SIGTERMed {t.worker.name} (pid {t.worker.pid}) with {running} jobs in flight{paused}"
        )


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


# --- worker freezes and twins --------------------------------------------------------------


def worker_id(proc: WorkerProcess) -> str:
    return str(proc.env.get("STEADFETCH_WORKER_ID", proc.name))


@dataclass(frozen=True)
class FreezeWorker(Fault):
    """SIGSTOP the first worker past its heartbeat TTL, then SIGCONT: another worker recovers
    its jobs meanwhile; the resumed one must notice it was presumed dead and lose nothing.

    Recorded as ``freeze`` invoke/ok (not ``signal``: the process is not meant to exit). The
    frozen worker's timers all fire at once when it resumes, so failure lines may follow.
    """

    ambiguous: bool = False
    outage: bool = False
    noisy: bool | None = True
    recovery_line: bool = False
    progress: bool = True
    past_ttl: float = 2.0
    """Seconds beyond the TTL the freeze lasts (the hold is TTL + this)."""

    async def apply(self, t: Target) -> str:
        await wait_for(lambda: t.in_flight() > 0, 10.0, "waiting for jobs in flight")
        proc = t.workers[0]
        t.history.record("nemesis", "freeze", "invoke", target=proc.name, pid=proc.pid)
        if proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
        return f"SIGSTOPped {proc.name} (pid {proc.pid}) with jobs in flight"

    async def hold(self, t: Target) -> None:
        ttl = float(t.workers[0].facts.get("ttl", self.duration))
        await asyncio.sleep(ttl + self.past_ttl)

    async def heal(self, t: Target) -> str:
        proc = t.workers[0]
        if proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        t.history.record("nemesis", "freeze", "ok", target=proc.name, pid=proc.pid)
        await blocking(t.stack.heal)
        return f"SIGCONTed {proc.name}"


@dataclass(frozen=True)
class TwinWorker(Fault):
    """Start a second worker with the first one's ``--worker-id``: it must be refused (exit 2,
    saying who holds the id) and the first must go on untouched."""

    ambiguous: bool = False
    outage: bool = False
    recovery_line: bool = False
    progress: bool = True
    duration: float = 0.0
    within: float = 10.0

    async def apply(self, t: Target) -> str:
        first = t.workers[0]
        twin = await t.start_worker(worker_id(first))
        t.history.record(
            "nemesis",
            "expect-exit",
            "ok",
            target=twin.name,
            why=f"starting with the id of live {first.name}",
            expect_codes=[2],
            within=self.within,
        )
        exited = await twin.wait_exit(self.within + 2.0)
        code = twin.returncode
        if not exited:
            twin.kill_now()  # it ran beside its twin: the checkers will say what it did
            await twin.wait_exit(10.0)
        return f"started {twin.name} as twin of {first.name} ({worker_id(first)}): exit {code}"


# --- Redis-side conditions -----------------------------------------------------------------


@dataclass(frozen=True)
class RedisSide(Fault):
    """A condition inside Redis, set with plain commands on a direct connection: what the
    worker sees are error replies (OOM, BUSY, MISCONF, NOSCRIPT...) or a stalled server, never a
    broken network. The stack's heal does not know these: each one undoes its own."""

    duration: float = 5.0
    join_during: bool = False
    """Start one more worker halfway through: registering while the condition lasts must be
    retried like any outage, never an exit 2 (a restart during an outage is no crash loop)."""

    async def hold(self, t: Target) -> None:
        if not self.join_during:
            return await super().hold(t)
        await asyncio.sleep(self.duration / 2)
        await t.start_worker()
        await asyncio.sleep(self.duration / 2)

    async def heal(self, t: Target) -> str:
        did = await blocking(lambda: self.undo(t))
        await blocking(t.stack.heal)
        return did

    def undo(self, t: Target) -> str:
        raise NotImplementedError


def _admin(t: Target, timeout: float | None = 10.0) -> Any:
    return t.stack.admin(timeout)


def _run(t: Target, *command: Any, timeout: float | None = 10.0) -> Any:
    client = _admin(t, timeout)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


@dataclass(frozen=True)
class OutOfMemory(RedisSide):
    """``maxmemory`` below what is used, with ``noeviction``: every write is refused with OOM
    (reads and deletes still work)."""

    def apply_sync(self, t: Target) -> str:
        _run(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
        _run(t, "CONFIG", "SET", "maxmemory", "1")
        return "CONFIG SET maxmemory 1 (noeviction): writes refused with OOM"

    async def apply(self, t: Target) -> str:
        return await blocking(lambda: self.apply_sync(t))

    def undo(self, t: Target) -> str:
        _run(t, "CONFIG", "SET", "maxmemory", "0")
        return "CONFIG SET maxmemory 0"


@dataclass(frozen=True)
class BusyScript(RedisSide):
    """Another client runs a Lua script that never ends; past ``busy-reply-threshold`` every
    other command gets BUSY. The heal kills the script (SCRIPT KILL: it wrote nothing)."""

    threshold_ms: int = 200

    async def apply(self, t: Target) -> str:
        await blocking(lambda: _run(t, "CONFIG", "SET", "busy-reply-threshold", self.threshold_ms))
        return f"a never-ending read-only script (busy-reply-threshold {self.threshold_ms} ms)"

    async def hold(self, t: Target) -> None:
        client, killer = _admin(t, None), _admin(t)
        killer.ping()  # connected before the script runs: a new connection is refused then
        runner = threading.Thread(
            target=_quietly(lambda: client.eval("while true do end", 0)), daemon=True
        )
        runner.start()
        try:
            await asyncio.sleep(self.duration)
        finally:
            await blocking(lambda: _kill_script(killer, runner))
            client.close()
            killer.close()

    def undo(self, t: Target) -> str:
        with contextlib.suppress(Exception):
            _run(t, "SCRIPT", "KILL")  # NOTBUSY when hold already killed it
        _run(t, "CONFIG", "SET", "busy-reply-threshold", 5000)
        return "SCRIPT KILL; busy-reply-threshold 5000"


def _quietly(fn: Callable[[], object]) -> Callable[[], None]:
    """A thread target whose expected failure (the killed script's error reply) is dropped."""

    def target() -> None:
        with contextlib.suppress(Exception):
            fn()

    return target


def _kill_script(killer: Any, runner: threading.Thread, limit: float = 10.0) -> None:
    """SCRIPT KILL until the script's thread ends (it may not have started running yet)."""
    deadline = time.monotonic() + limit
    while runner.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            killer.script_kill()
        runner.join(0.1)
    if runner.is_alive():
        raise TimeoutError(f"the busy script still runs after {limit:.0f} s of SCRIPT KILL")


@dataclass(frozen=True)
class FailedSave(RedisSide):
    """A background save fails (``dir`` set to ``/proc``, where no file can be created; works
    in the FROM-scratch container too) with save points configured: every write is refused
    with MISCONF until a save succeeds again."""

    async def apply(self, t: Target) -> str:
        return await blocking(lambda: self._apply(t))

    def _apply(self, t: Target) -> str:
        client = _admin(t)
        try:
            original = client.config_get("dir")["dir"]
            t.history.record("nemesis", "note", "ok", original_dir=original)
            client.config_set("save", "3600 1")
            client.config_set("dir", "/proc")
            client.bgsave()
            _wait_save(client, "err")
        finally:
            client.close()
        return f"CONFIG SET dir /proc (was {original}) + save points; BGSAVE failed: MISCONF"

    def undo(self, t: Target) -> str:
        notes = [op for op in t.history.ops() if op.f == "note" and "original_dir" in op.value]
        original = str(notes[-1].value["original_dir"]) if notes else "/data"
        client = _admin(t)
        try:
            client.config_set("dir", original)
            _wait_save(client, None)
            client.bgsave()
            _wait_save(client, "ok")
            client.config_set("save", "")
        finally:
            client.close()
        return f"CONFIG SET dir {original}; BGSAVE succeeded"


def _wait_save(client: Any, status: str | None, limit: float = 10.0) -> None:
    """Until no save runs (and the last one ended with ``status``, when given)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info.get("rdb_bgsave_in_progress") and (
            status is None or info.get("rdb_last_bgsave_status") == status
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"background save did not end with status {status} in {limit} s")


@dataclass(frozen=True)
class Storm(RedisSide):
    """One command again and again, every ``every`` seconds, for ``duration``."""

    every: float = 0.1

    async def apply(self, t: Target) -> str:
        return f"{self.description} (every {self.every * 1000:.0f} ms)"

    async def hold(self, t: Target) -> None:
        client = _admin(t)
        try:
            end = time.monotonic() + self.duration
            while time.monotonic() < end:
                await blocking(lambda: self.strike(t, client))
                await asyncio.sleep(self.every)
        finally:
            client.close()

    def strike(self, t: Target, client: Any) -> None:
        raise NotImplementedError

    def undo(self, t: Target) -> str:
        return "storm over"


@dataclass(frozen=True)
class ScriptFlushStorm(Storm):
    """SCRIPT FLUSH over and over: every cached script vanishes between load and call."""

    every: float = 0.05
    progress: bool = True

    def strike(self, t: Target, client: Any) -> None:
        client.script_flush()


@dataclass(frozen=True)
class ClientKillStorm(Storm):
    """CLIENT KILL of every worker connection (by client name) over and over."""

    every: float = 0.3

    def strike(self, t: Target, client: Any) -> None:
        ids = {worker_id(w) for w in t.workers}
        for entry in client.client_list():
            if entry.get("name") in ids:
                with contextlib.suppress(Exception):
                    client.client_kill_filter(_id=entry["id"])


@dataclass(frozen=True)
class DebugSleep(RedisSide):
    """``DEBUG SLEEP``: the server stops answering anyone for ``duration`` seconds."""

    async def apply(self, t: Target) -> str:
        return f"DEBUG SLEEP {self.duration:g}"

    async def hold(self, t: Target) -> None:
        await blocking(lambda: _run(t, "DEBUG", "SLEEP", self.duration, timeout=None))

    def undo(self, t: Target) -> str:
        return "the server woke up"


@dataclass(frozen=True)
class ClientPause(RedisSide):
    """``CLIENT PAUSE ms ALL``: every client's commands wait until the pause ends."""

    async def apply(self, t: Target) -> str:
        ms = int(self.duration * 1000)
        await blocking(lambda: _run(t, "CLIENT", "PAUSE", ms, "ALL"))
        return f"CLIENT PAUSE {ms} ALL"

    def undo(self, t: Target) -> str:
        _run(t, "CLIENT", "UNPAUSE")
        return "CLIENT UNPAUSE"


@dataclass(frozen=True)
class OutputBufferLimit(RedisSide):
    """``client-output-buffer-limit normal`` below a full batch of large jobs: Redis closes a
    connection whose reply would exceed it (the reply is lost, the jobs were moved). A short cut
    first lets the worker's window empty, so its next fetch asks for a full batch."""

    limit: str = "256kb"
    cut: float = 1.5
    progress: bool = True

    async def apply(self, t: Target) -> str:
        await blocking(
            lambda: _run(
                t, "CONFIG", "SET", "client-output-buffer-limit", f"normal {self.limit} 0 0"
            )
        )
        await blocking(t.stack.proxy.disable)
        await asyncio.sleep(self.cut)
        await blocking(t.stack.proxy.enable)
        return f"client-output-buffer-limit normal {self.limit}, after a {self.cut:g} s cut"

    def undo(self, t: Target) -> str:
        _run(t, "CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0")
        return "client-output-buffer-limit normal 0 0 0"
