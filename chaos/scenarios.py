"""The scenario catalogue: one fault each, the worker settings to run it with, and the verdicts
expected. Two *broken* scenarios run a deliberately unsafe worker and expect the checker to
catch it: they prove the checker can fail.

Timings are short so the whole catalogue fits ~30 s per scenario and environment on 2 cores:
3 s warm-up, 5-10 s fault, 3 s of production after the heal, at most 10 s to drain. The worker
runs with small block/read timeouts and a 1 s retry cap so that recovery is quick and a LOCK-UP
is unambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chaos.checkers import Limits
from chaos.nemesis import (
    Cut,
    DoubleTerm,
    Fault,
    Flapping,
    KillWorker,
    RedisDown,
    RedisPause,
    SignalDuringOutage,
    SlowJobDuringCut,
    Toxic,
)


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
    extra: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        flags: dict[str, object] = {
            "--mode": self.mode,
            "--concurrency": self.concurrency,
            "--block-timeout": self.block_timeout,
            "--connect-timeout": self.connect_timeout,
            "--read-timeout": self.read_timeout,
            "--retry-base": self.retry_base,
            "--retry-cap": self.retry_cap,
            "--job-timeout": self.job_timeout,
            "--grace-period": self.grace_period,
            "--heartbeat-interval": self.heartbeat_interval,
            "--recovery-interval": self.recovery_interval,
        }
        return [part for flag, value in flags.items() for part in (flag, str(value))] + list(
            self.extra
        )

    @property
    def recovery_bound(self) -> float:
        """Backoff cap + one blocked fetch's read timeout + a few seconds (process start-up)."""
        return self.retry_cap + self.block_timeout + self.read_timeout + 4.0


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
    warmup: float = 3.0
    after: float = 3.0
    drain: float = 10.0
    rate: float = 20.0
    work: float = 0.02
    """Seconds each job works (longer where a fault must catch jobs in flight)."""
    known_bug: str | None = None
    """A bug in fetcher/worker this scenario finds and that is not fixed yet: its pytest test is
    marked xfail(strict=True), so the fix turns it into a failure until this is removed."""
    intermittent: bool = False
    """The known bug shows in some runs only: xfail(strict=False), or the suite would be flaky."""

    @property
    def description(self) -> str:
        return self.fault.description

    @property
    def limits(self) -> Limits:
        return Limits(recovery_bound=self.worker.recovery_bound)


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


NO_WATCHDOG = ("--watchdog-timeout", "0")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("cut", Cut("cut", "proxy disabled for 6 s: connections dropped, new ones refused")),
    Scenario(
        "blackhole-down",
        _toxic(
            "blackhole-down",
            "replies vanish (timeout toxic, timeout=0, downstream); open sockets stay half-open",
            "timeout",
            "downstream",
            soft=True,
            timeout=0,
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
        Flapping("flapping", "link cut and restored about every second for 20 s", duration=20.0),
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
    # --- proof that the checker can fail -----------------------------------------------------
    Scenario(
        "broken-no-read-timeout",
        _toxic(
            "broken-no-read-timeout",
            "BROKEN: --read-timeout 0 --watchdog-timeout 0 under a black hole: must be LOCK-UP",
            "timeout",
            "downstream",
            soft=True,
            timeout=0,
        ),
        worker=WorkerSettings(read_timeout=0, extra=NO_WATCHDOG),
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
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}


def select(pattern: str | None) -> list[Scenario]:
    """Scenarios whose name contains any of the comma-separated substrings (all when None)."""
    if not pattern:
        return list(SCENARIOS)
    parts = [p.strip() for p in pattern.split(",") if p.strip()]
    return [s for s in SCENARIOS if any(p in s.name for p in parts)]
