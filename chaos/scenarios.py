"""The scenario catalogue: one fault each, the worker settings to run it with, and the verdicts
expected. Two *broken* scenarios run a deliberately unsafe worker and expect the checker to
catch it: they prove the checker can fail.

Timings are short so the whole catalogue fits ~20 s per scenario and environment on 2 cores:
2 s warm-up, 4-10 s fault, 2 s of production after the heal, at most 10 s to drain. The worker
runs with small block/read timeouts and a 1 s retry cap so that recovery is quick and a LOCK-UP
is unambiguous; the recovery bound is derived from those settings (``recovery_bound``).

Beyond one fault against one worker below capacity, the catalogue has: a standing backlog on
three priority queues (``BACKLOG``: every fetch takes a full batch, so a fault cuts one
mid-flight), two and three workers (recovery races, a live worker taken for dead, a frozen one,
a twin id), the watchdog's own case (no read timeouts), and Redis-side conditions (error
replies and stalls inside Redis, not a broken network).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from steadfetch.chaos.checkers import Limits
from steadfetch.chaos.failover import (
    KillClusterPrimary,
    KillPrimary,
    LaggingKill,
    PartitionPrimary,
    SentinelFailover,
)
from steadfetch.chaos.nemesis import (
    BusyScript,
    ClientKillStorm,
    ClientPause,
    Cut,
    DebugSleep,
    DoubleTerm,
    FailedSave,
    Fault,
    Flapping,
    FreezeWorker,
    KillWorker,
    OutOfMemory,
    OutputBufferLimit,
    RedisDown,
    RedisPause,
    ScriptFlushStorm,
    SignalDuringOutage,
    SlowJobDuringCut,
    TermWorker,
    Toxic,
    TwinWorker,
)
from steadfetch.worker.config import WorkerConfig

RECOVERY_MARGIN = 2.0
"""One fetch and one short job, on a 2-core machine shared with other test runs."""
STARTUP_ALLOWANCE = 3.0
"""A replacement worker process starting: interpreter, imports, connect, register."""


@dataclass(frozen=True)
class WorkerSettings:
    """Flags for ``steadfetch run`` (see docs/CONTRACTS.md)."""

    mode: str = "reliable"
    concurrency: int = 4
    block_timeout: float = 0.5
    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    retry_base: float = 0.1
    retry_cap: float = 1.0
    job_timeout: float = 2.0
    grace_period: float = 3.0
    heartbeat_interval: float = 1.0
    recovery_interval: float = 1.0
    prefetch: int | None = None
    watchdog_timeout: float | None = None
    extra: tuple[str, ...] = ()

    def config(self) -> WorkerConfig:
        """The worker's own view of these settings (its derived values: prefetch, TTL...)."""
        return WorkerConfig(
            app="chaos",
            concurrency=self.concurrency,
            prefetch=self.prefetch,
            mode=self.mode,  # type: ignore[arg-type]
            job_timeout=self.job_timeout,
            grace_period=self.grace_period,
            block_timeout=self.block_timeout,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            redis_retry_base=self.retry_base,
            redis_retry_cap=self.retry_cap,
            heartbeat_interval=self.heartbeat_interval,
            recovery_interval=self.recovery_interval,
            watchdog_timeout=self.watchdog_timeout,
        )

    def facts(self) -> dict[str, object]:
        """Recorded with each ``worker-start`` for the checkers: its window (concurrency + the
        prefetch at its largest: what its processing lists may hold, finished-but-unacked jobs
        included), what a death licenses (``holds``), its heartbeat TTL and interval."""
        config = self.config()
        window = config.concurrency + config.prefetch_ceiling
        return {
            "holds": 2 * window,
            "window": window,
            "ttl": config.heartbeat_ttl,
            "heartbeat_interval": config.heartbeat_interval,
        }

    def argv(self) -> list[str]:
        flags: dict[str, object] = {
            "--mode": self.mode,
            "--concurrency": self.concurrency,
            "--block-timeout": self.block_timeout,
            "--connect-timeout": self.connect_timeout,
            "--read-timeout": self.read_timeout,
            "--redis-retry-base": self.retry_base,
            "--redis-retry-cap": self.retry_cap,
            "--job-timeout": self.job_timeout,
            "--grace-period": self.grace_period,
            "--heartbeat-interval": self.heartbeat_interval,
            "--recovery-interval": self.recovery_interval,
        }
        if self.prefetch is not None:
            flags["--prefetch"] = self.prefetch
        if self.watchdog_timeout is not None:
            flags["--watchdog-timeout"] = self.watchdog_timeout
        return [part for flag, value in flags.items() for part in (flag, str(value))] + list(
            self.extra
        )

    @property
    def recovery_bound(self) -> float:
        """What the configuration implies after a heal: a retry wait in progress (at most the
        cap), one call stuck on a connection the fault broke (a blocked fetch: block timeout +
        read timeout; without read timeouts, the watchdog's limit and period), then a fetch and
        a job, with a margin for a loaded machine. An uncapped backoff overshoots it."""
        config = self.config()
        if config.read_timeout:
            stuck = config.block_timeout + config.read_timeout
        else:
            watchdog = config.effective_watchdog_timeout
            stuck = watchdog + min(1.0, watchdog / 4)
        return config.redis_retry_cap + stuck + RECOVERY_MARGIN


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    worker: WorkerSettings = WorkerSettings()
    expect: Mapping[str, bool] = field(default_factory=dict)
    """Checker name -> the validity it must have. Checkers not named must be valid, unless the
    scenario is not ``strict`` (a broken configuration may fail several ways at once)."""
    strict: bool = True
    broken: bool = False
    warmup: float = 2.0
    after: float = 2.0
    drain: float = 10.0
    rate: float = 20.0
    work: float = 0.02
    """Seconds each job works (longer where a fault must catch jobs in flight)."""
    work_jitter: float = 0.0
    """Each job works ``work`` ± up to this fraction (seeded): runners finish out of step, so
    fetches ask for a few free slots instead of a whole batch at once."""
    known_bug: str | None = None
    """A bug in fetcher/worker this scenario finds and that is not fixed yet: its pytest test is
    marked xfail(strict=True), so the fix turns it into a failure until this is removed."""
    intermittent: bool = False
    """The known bug shows in some runs only: xfail(strict=False), or the suite would be flaky."""
    workers: int = 1
    """How many workers run from the start (faults act on the last one unless they say)."""
    queues: tuple[str, ...] = ("default",)
    """The worker serves these, in priority order; the producer spreads jobs over them."""
    backlog: int = 0
    """Jobs enqueued before the first worker starts: with a rate above what the worker drains,
    a standing backlog, so fetches take full batches and a fault cuts one mid-flight."""
    pad: int = 0
    """Bytes of padding per job (large jobs: output-buffer limits)."""
    sentinel: bool = False
    """Run on a Sentinel service (chaos.env.sentinel): primary behind the proxy, a replica, three
    sentinels; the worker, the producer and the checker use the redis+sentinel:// URL."""
    durability: str | None = None
    """``--durability`` for the worker and the producer (e.g. ``replicas=1,timeout=500ms``)."""
    cluster: bool = False
    """Run on a Redis Cluster (chaos.env.cluster: three primaries, three replicas, as local
    processes or containers); the worker, the producer and the checker use the redis+cluster://
    URL."""

    @property
    def description(self) -> str:
        return self.fault.description

    @property
    def limits(self) -> Limits:
        bound = self.worker.recovery_bound + self.work
        if self.fault.restarts_worker:
            bound += STARTUP_ALLOWANCE
        return Limits(
            recovery_bound=bound,
            retry_cap=self.worker.retry_cap,
            watchdog_allowed=self.worker.read_timeout == 0,
        )


def _toxic(
    name: str, description: str, toxic: str, stream: str, *, soft: bool = False, **attrs: float
) -> Fault:
    stalls = attrs.get("latency", 0) > 5000 or (toxic == "bandwidth" and attrs.get("rate") == 0)
    outage = toxic in ("timeout", "reset_peer", "limit_data") or stalls
    return Toxic(
        name,
        description,
        toxic=toxic,
        stream="upstream" if stream == "upstream" else "downstream",
        attributes=dict(attrs),
        outage=outage,
        ambiguous=toxic != "latency" or outage,
        soft_heal=soft,
    )


def _blackhole(name: str, description: str) -> Fault:
    """Replies vanish (timeout toxic, timeout=0, downstream), healed softly: open sockets stay
    half-open, so only a read timeout (or the watchdog) notices."""
    return _toxic(name, description, "timeout", "downstream", soft=True, timeout=0)


WATCHDOG_ONLY = WorkerSettings(read_timeout=0, watchdog_timeout=3.0)
"""No client read timeout: a call on a half-open socket waits forever unless the watchdog acts."""

SUPERVISED = WorkerSettings(extra=("--processes", "2"))
"""``steadfetch run --processes 2``: the process under test is the supervisor."""

BACKLOG: dict[str, Any] = {
    "worker": WorkerSettings(concurrency=4, prefetch=4),
    "queues": ("high", "default", "low"),
    "backlog": 400,
    "rate": 20.0,
    "work": 0.05,
}
"""Capacity ~80 jobs/s; 400 queued up front drain at ~60/s: a backlog all through the fault."""

FAILOVER: dict[str, Any] = {"sentinel": True, "rate": 20.0, "work": 0.05, "drain": 15.0}
"""Sentinel scenarios (chaos.failover): the worker follows the primary through the sentinels."""

LAGGING: dict[str, Any] = {**FAILOVER, "backlog": 60, "rate": 10.0, "work": 0.15, "drain": 6.0}
"""A standing backlog (capacity ~27 jobs/s, 60 queued up front): the jobs enqueued while the
replica misses writes are still queued when the primary dies, so Redis's loss shows as lost jobs
(a job already run before the kill is no loss, whatever Redis forgets about it). The drain is
short: the jobs Redis lost never finish, so it always runs to its limit."""

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("cut", Cut("cut", "proxy disabled for 6 s: connections dropped, new ones refused")),
    Scenario(
        "blackhole-down",
        _blackhole(
            "blackhole-down",
            "replies vanish (timeout toxic, timeout=0, downstream); open sockets stay half-open",
        ),
    ),
    Scenario(
        "blackhole-up",
        _toxic(
            "blackhole-up",
            "commands vanish (timeout toxic, timeout=0, upstream); open sockets stay half-open",
            "timeout",
            "upstream",
            soft=True,
            timeout=0,
        ),
    ),
    Scenario(
        "stall",
        _toxic(
            "stall",
            "replies stall (bandwidth toxic, rate=0) beyond the read timeout; released at heal",
            "bandwidth",
            "downstream",
            rate=0,
        ),
    ),
    Scenario(
        "latency",
        _toxic(
            "latency",
            "1 s latency with 250 ms jitter on replies: slow but correct",
            "latency",
            "downstream",
            latency=1000,
            jitter=250,
        ),
    ),
    Scenario(
        "latency-up",
        _toxic(
            "latency-up",
            "1 s latency with 250 ms jitter on commands (upstream)",
            "latency",
            "upstream",
            latency=1000,
            jitter=250,
        ),
    ),
    Scenario(
        "bandwidth",
        _toxic(
            "bandwidth",
            "replies limited to 1 KB/s",
            "bandwidth",
            "downstream",
            rate=1,
        ),
    ),
    Scenario(
        "slow-close",
        _toxic(
            "slow-close",
            "connections close 2 s late (slow_close downstream)",
            "slow_close",
            "downstream",
            delay=2000,
        ),
    ),
    Scenario(
        "reset-peer",
        _toxic(
            "reset-peer",
            "every connection is reset (TCP RST) after 100 ms (reset_peer upstream)",
            "reset_peer",
            "upstream",
            timeout=100,
        ),
    ),
    Scenario(
        "limit-data",
        _toxic(
            "limit-data",
            "connections closed after 120 bytes of reply: replies cut in the middle",
            "limit_data",
            "downstream",
            bytes=120,
        ),
    ),
    Scenario(
        "limit-data-up",
        _toxic(
            "limit-data-up",
            "connections closed after 200 bytes of commands: a command or pipeline cut mid-send",
            "limit_data",
            "upstream",
            bytes=200,
        ),
    ),
    Scenario(
        "slicer",
        _toxic(
            "slicer",
            "replies sliced into 1-3 byte pieces, 50 us apart",
            "slicer",
            "downstream",
            average_size=2,
            size_variation=1,
            delay=50,
        ),
    ),
    Scenario(
        "redis-restart",
        RedisDown(
            "redis-restart", "redis-server stopped for 5 s, then started (AOF)", duration=5.0
        ),
    ),
    Scenario(
        "redis-kill",
        RedisDown(
            "redis-kill",
            "redis-server SIGKILLed, down 5 s, restarted from its AOF",
            duration=5.0,
            kill=True,
        ),
    ),
    Scenario(
        "redis-pause",
        RedisPause("redis-pause", "redis-server SIGSTOPped for 10 s, then SIGCONT", duration=10.0),
    ),
    Scenario(
        "flapping",
        Flapping("flapping", "link cut and restored about every second for 12 s", duration=12.0),
    ),
    Scenario(
        "worker-kill",
        KillWorker("worker-kill", "worker SIGKILLed mid-batch, then a new one started"),
        rate=10.0,
        work=0.3,
    ),
    Scenario(
        "sigterm-outage",
        SignalDuringOutage(
            "sigterm-outage", "SIGTERM while Redis is unreachable: exit 0 within the grace period"
        ),
    ),
    Scenario(
        "sigkill-outage",
        SignalDuringOutage(
            "sigkill-outage",
            "worker SIGKILLed while Redis is unreachable; the next one recovers its jobs",
            kill=True,
        ),
        rate=10.0,
        work=0.3,
    ),
    Scenario(
        "double-sigterm",
        DoubleTerm("double-sigterm", "two SIGTERMs while jobs run: forced exit, nothing lost"),
        rate=3.0,
        work=1.0,
    ),
    Scenario(
        "job-timeout",
        SlowJobDuringCut(
            "job-timeout",
            "a job outlives its 2 s timeout while the link is cut; retried after the heal",
        ),
    ),
    Scenario(
        "sigterm-restart",
        TermWorker(
            "sigterm-restart",
            "worker SIGTERMed mid-batch (drains, exit 0), then a new one: no job may run twice",
        ),
        rate=10.0,
        work=0.3,
    ),
    Scenario(
        "sigterm-write-pause",
        TermWorker(
            "sigterm-write-pause",
            "worker SIGTERMed while writes are paused for 1 s: the acks of the jobs that finish "
            "during the drain go out in the last flush; no job may run twice",
            pause_writes=1.0,
        ),
        rate=10.0,
        work=0.4,
        work_jitter=0.5,  # runners out of step: jobs finish one by one during the pause
    ),
    # --- a standing backlog: every fetch takes a full batch, the fault cuts one mid-flight ---
    Scenario(
        "cut-backlog",
        Cut(
            "cut-backlog",
            "proxy disabled for 4 s with a standing backlog on 3 priority queues",
            duration=4.0,
        ),
        **BACKLOG,
        work_jitter=0.5,  # runners out of step: a fetch for a full batch overfills the window
    ),
    Scenario(
        "blackhole-backlog",
        _blackhole(
            "blackhole-backlog",
            "replies vanish mid-batch (timeout toxic downstream) with a standing backlog",
        ),
        **BACKLOG,
    ),
    Scenario(
        "limit-data-backlog",
        _toxic(
            "limit-data-backlog",
            "replies cut after 2 KB (limit_data) while batches of 8 are fetched from a backlog",
            "limit_data",
            "downstream",
            bytes=2048,
        ),
        **BACKLOG,
    ),
    Scenario(
        "worker-kill-backlog",
        KillWorker("worker-kill-backlog", "worker SIGKILLed while draining a standing backlog"),
        **BACKLOG,
    ),
    # --- several workers: recovery races, live workers mistaken for dead ---------------------
    Scenario(
        "latency-2w",
        replace(
            _toxic(
                "latency-2w",
                "two workers under 1 s latency (250 ms jitter): neither taken for dead",
                "latency",
                "downstream",
                latency=1000,
                jitter=250,
            ),
            progress=True,
        ),
        workers=2,
    ),
    Scenario(
        "latency-up-3w",
        replace(
            _toxic(
                "latency-up-3w",
                "three workers under 1 s latency on commands: none taken for dead",
                "latency",
                "upstream",
                latency=1000,
                jitter=250,
            ),
            progress=True,
        ),
        workers=3,
    ),
    Scenario(
        "freeze-2w",
        FreezeWorker(
            "freeze-2w",
            "worker-1 SIGSTOPped past its heartbeat TTL (worker-2 recovers its jobs), then SIGCONT",
        ),
        workers=2,
        rate=10.0,
        work=0.3,
    ),
    Scenario(
        "worker-kill-3w",
        KillWorker("worker-kill-3w", "one of three workers SIGKILLed: two recoverers race"),
        workers=3,
        rate=15.0,
        work=0.3,
    ),
    Scenario(
        "twin-ids",
        TwinWorker("twin-ids", "a second worker with the first's --worker-id: refused with exit 2"),
        rate=10.0,
        work=0.3,
    ),
    # --- a supervisor of two worker processes (run --processes 2, issue 11 §1) ---------------
    Scenario(
        "cut-2p",
        # Shorter than the heartbeat TTL (5 s): past it, each process is presumed dead by its
        # sibling, which recovers its jobs (by design; the recovered-workers checker flags it).
        Cut(
            "cut-2p",
            "proxy disabled for 3 s under a supervisor of 2 worker processes",
            duration=3.0,
        ),
        worker=SUPERVISED,
        rate=30.0,
    ),
    Scenario(
        "supervisor-kill-2p",
        KillWorker(
            "supervisor-kill-2p",
            "the supervisor of 2 worker processes SIGKILLed mid-batch: its children notice, "
            "drain and exit; a new supervisor starts",
        ),
        worker=SUPERVISED,
        rate=10.0,
        work=0.3,
    ),
    # --- the watchdog's own case: no read timeouts, a black hole ----------------------------
    Scenario(
        "watchdog-blackhole",
        replace(
            _blackhole(
                "watchdog-blackhole",
                "--read-timeout 0, a 2 s black hole: the fetch stays stuck on its half-open "
                "socket after the heal until the watchdog (3 s) resets it",
            ),
            duration=2.0,
        ),
        worker=WATCHDOG_ONLY,
    ),
    Scenario(
        "watchdog-blackhole-long",
        _blackhole(
            "watchdog-blackhole-long",
            "--read-timeout 0, a 6 s black hole: the watchdog fires during it, and the retries "
            "on new connections hang in the hole too",
        ),
        worker=WATCHDOG_ONLY,
    ),
    # --- Redis-side conditions (issue 9): error replies and stalls, not a broken network ----
    Scenario(
        "redis-oom",
        OutOfMemory(
            "redis-oom",
            "maxmemory below use (noeviction) for 4 s: writes refused with OOM; a second "
            "worker starts meanwhile",
            ambiguous=False,
            join_during=True,
            duration=4.0,
        ),
    ),
    Scenario(
        "redis-busy",
        BusyScript(
            "redis-busy",
            "another client's never-ending Lua script for 4 s: BUSY replies",
            ambiguous=False,
            duration=4.0,
        ),
    ),
    Scenario(
        "redis-misconf",
        FailedSave(
            "redis-misconf",
            "a failed background save (dir /proc): writes refused with MISCONF; a second "
            "worker starts meanwhile",
            ambiguous=False,
            join_during=True,
            duration=4.0,
        ),
    ),
    Scenario(
        "script-flush-storm",
        ScriptFlushStorm(
            "script-flush-storm",
            "SCRIPT FLUSH every 50 ms for 4 s: NOSCRIPT between load and call",
            ambiguous=False,
            outage=False,
            duration=4.0,
        ),
        rate=40.0,
    ),
    Scenario(
        "client-kill-storm",
        ClientKillStorm(
            "client-kill-storm",
            "CLIENT KILL of the worker's connections every 300 ms for 4 s",
            duration=4.0,
        ),
    ),
    Scenario(
        "debug-sleep",
        DebugSleep("debug-sleep", "DEBUG SLEEP 4: the server answers no one", duration=4.0),
    ),
    Scenario(
        "client-pause",
        ClientPause("client-pause", "CLIENT PAUSE 4000 ALL: every command waits", duration=4.0),
    ),
    Scenario(
        "output-buffer",
        OutputBufferLimit(
            "output-buffer",
            "client-output-buffer-limit normal 256kb for 10 s with 40 KB jobs and a backlog; "
            "a 1.5 s cut first, so the next fetch asks for 12 jobs (480 KB)",
            outage=False,
            noisy=True,
            duration=9.0,
        ),
        worker=WorkerSettings(concurrency=8, prefetch=4),
        backlog=200,
        pad=40_000,
        rate=5.0,
        work=0.2,
    ),
    # --- proof that the checker can fail -----------------------------------------------------
    Scenario(
        "broken-no-read-timeout",
        _blackhole(
            "broken-no-read-timeout",
            "BROKEN: --read-timeout 0 --watchdog-timeout 0 under a black hole: must be LOCK-UP",
        ),
        worker=WorkerSettings(read_timeout=0, watchdog_timeout=0),
        expect={"recovery": False},
        strict=False,
        broken=True,
        drain=5.0,
    ),
    Scenario(
        "broken-fast-kill",
        KillWorker(
            "broken-fast-kill",
            "BROKEN: --mode fast (destructive pops) + worker SIGKILL: must lose jobs",
        ),
        worker=WorkerSettings(mode="fast", concurrency=8),
        expect={"lost": False},
        strict=False,
        broken=True,
        drain=5.0,
        rate=10.0,
        work=0.5,
    ),
    # --- Sentinel: the primary fails over to the replica (chaos.failover) ---
    Scenario(
        "failover-command",
        SentinelFailover(
            "failover-command",
            "SENTINEL FAILOVER: the live primary is demoted, the replica promoted",
        ),
        **FAILOVER,
    ),
    Scenario(
        "failover-command-durable",
        SentinelFailover(
            "failover-command-durable",
            "SENTINEL FAILOVER with --durability replicas=1: the split brain's writes are not "
            "confirmed (the old primary has no replica left), so none is acknowledged and lost",
        ),
        durability="replicas=1,timeout=500ms",
        **FAILOVER,
    ),
    Scenario(
        "cluster-kill-primary",
        KillClusterPrimary(
            "cluster-kill-primary",
            "the Redis Cluster primary of the queue's slot SIGKILLed; its replica takes over",
        ),
        cluster=True,
        rate=20.0,
        work=0.05,
        drain=15.0,
    ),
    Scenario(
        "cluster-kill-primary-durable",
        KillClusterPrimary(
            "cluster-kill-primary-durable",
            "the same with --durability replicas=1 (worker and producer): each write's WAIT on "
            "its slot's primary; nothing acknowledged may be lost",
        ),
        cluster=True,
        durability="replicas=1,timeout=500ms",
        rate=20.0,
        work=0.05,
        drain=15.0,
    ),
    Scenario(
        "failover-kill",
        KillPrimary("failover-kill", "the primary SIGKILLed; the sentinels promote the replica"),
        **FAILOVER,
    ),
    Scenario(
        "failover-partition",
        PartitionPrimary(
            "failover-partition",
            "the primary partitioned from sentinels, replica and clients (proxy disabled)",
        ),
        **FAILOVER,
    ),
    Scenario(
        "failover-lag-kill",
        LaggingKill(
            "failover-lag-kill",
            "the replica misses 1 s of writes (its link black-holed), then the primary is "
            "SIGKILLed: Redis loses what it acknowledged (counted apart, allowed)",
        ),
        **LAGGING,
    ),
    Scenario(
        "failover-lag-kill-durable",
        LaggingKill(
            "failover-lag-kill-durable",
            "the same with --durability replicas=1 (worker and producer): nothing acknowledged "
            "may be lost",
        ),
        durability="replicas=1,timeout=500ms",
        **LAGGING,
    ),
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


def select(pattern: str | None) -> list[Scenario]:
    """Scenarios named by the comma-separated parts (all when None): a part that is a scenario's
    exact name selects that one (``cut``, not ``cut-backlog``), any other part every scenario
    whose name contains it."""
    if not pattern:
        return list(SCENARIOS)
    parts = [p.strip() for p in pattern.split(",") if p.strip()]

    def chosen(name: str, part: str) -> bool:
        return name == part if part in BY_NAME else part in name

    return [s for s in SCENARIOS if any(chosen(s.name, p) for p in parts)]
