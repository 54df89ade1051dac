"""The worker's settings, validated once, with a repr that never shows the Redis password."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import get_args

from steadfetch.fetcher.durability import Durability
from steadfetch.fetcher.fetch import Mode
from steadfetch.fetcher.url import redact_url

MODES: tuple[Mode, ...] = get_args(Mode)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


#: Upper bounds: larger values overflowed (a traceback), stalled the loop (one runner task per
#: slot) or reached Redis as a TTL or block timeout it refuses, blamed on a Lua script.
MAX_CONCURRENCY = 10_000
MAX_SECONDS = 365 * 24 * 3600
#: The adaptive prefetch (no --prefetch given) grows up to this many times the concurrency (and
#: up to worker.worker.PREFETCH_MAX_BYTES of payloads held beyond the running jobs).
PREFETCH_MAX_FACTOR = 10


class ConfigError(ValueError):
    """A setting is out of range; the message names the flag and what is allowed."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything ``steadfetch run`` can be told (each also from ``STEADFETCH_*``)."""

    app: str
    queues: tuple[str, ...] = ("default",)
    concurrency: int = 50
    prefetch: int | None = None  # None: 10% of concurrency
    mode: Mode = "reliable"
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    job_timeout: float = 300.0
    grace_period: float = 30.0
    block_timeout: float = 1.0
    connect_timeout: float = 2.0
    read_timeout: float = 5.0  # 0 = no client read timeout (unsafe; chaos proofs only)
    redis_retry_base: float = 0.1  # backoff while Redis is unreachable
    redis_retry_cap: float = 5.0
    # A failed job's retries, for jobs and tasks that set none (see worker.app).
    max_attempts: int = 3
    job_retry_base: float = 1.0
    job_retry_cap: float = 300.0
    heartbeat_interval: float = 5.0
    recovery_interval: float = 15.0
    scheduler_interval: float = 1.0
    watchdog_timeout: float | None = None  # None: derived; 0 = disabled (unsafe)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    worker_id: str | None = None
    durability: Durability | None = None  # WAIT/WAITAOF after enqueue and settle

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"WorkerConfig({shown}, redis_url={redact_url(self.redis_url)!r})"

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (bool(self.queues) and all(self.queues), "--queues needs at least one non-empty name"),
            (self.concurrency >= 1, "--concurrency must be >= 1"),
            (self.prefetch is None or self.prefetch >= 0, "--prefetch must be >= 0"),
            (self.mode in MODES, f"--mode must be one of {', '.join(MODES)}"),
            (self.job_timeout > 0, "--job-timeout must be > 0"),
            (self.grace_period >= 0, "--grace-period must be >= 0"),
            (self.block_timeout > 0, "--block-timeout must be > 0"),
            (self.connect_timeout > 0, "--connect-timeout must be > 0"),
            (self.read_timeout >= 0, "--read-timeout must be >= 0 (0 = none, unsafe)"),
            (
                0 < self.redis_retry_base <= self.redis_retry_cap,
                "need 0 < --redis-retry-base <= --redis-retry-cap",
            ),
            (self.max_attempts >= 1, "--max-attempts must be >= 1"),
            (
                0 < self.job_retry_base <= self.job_retry_cap,
                "need 0 < --job-retry-base <= --job-retry-cap",
            ),
            (self.heartbeat_interval > 0, "--heartbeat-interval must be > 0"),
            (
                self.watchdog_timeout is None or self.watchdog_timeout >= 0,
                "--watchdog-timeout must be >= 0",
            ),
            (
                self.metrics_port is None or 0 <= self.metrics_port < 65536,
                "--metrics-port must be 0..65535",
            ),
        ]
        checks.append(
            (self.concurrency <= MAX_CONCURRENCY, f"--concurrency must be <= {MAX_CONCURRENCY}")
        )
        checks.append(
            (
                self.prefetch is None or self.prefetch <= MAX_CONCURRENCY,
                f"--prefetch must be <= {MAX_CONCURRENCY}",
            )
        )
        checks.append(
            (
                self.worker_id is None or all("!" <= c <= "~" for c in self.worker_id),
                "--worker-id must be printable ASCII without spaces (it is the Redis client name)",
            )
        )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not value <= MAX_SECONDS:  # NaN too (Python API)
                flag = "--" + f.name.replace("_", "-")
                checks.append(
                    (False, f"{flag} must be <= {MAX_SECONDS} s (one year), got {value:g}")
                )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def effective_prefetch(self) -> int:
        """Jobs fetched beyond the free slots, so a finishing job finds the next one waiting."""
        return self.prefetch if self.prefetch is not None else max(0, self.concurrency // 10)

    @property
    def prefetch_ceiling(self) -> int:
        """The most the prefetch may grow to: an explicit ``--prefetch`` is fixed; the adaptive
        one (worker.window.PrefetchSizer) grows up to PREFETCH_MAX_FACTOR x the concurrency.
        What one worker can hold is at most concurrency + this (acks not yet sent included)."""
        if self.prefetch is not None:
            return self.prefetch
        return max(self.effective_prefetch, self.concurrency * PREFETCH_MAX_FACTOR)

    @property
    def effective_watchdog_timeout(self) -> float:
        """How long a fetch may take before it is impossible: block + read timeout + margin."""
        if self.watchdog_timeout is not None:
            return self.watchdog_timeout
        return self.block_timeout + max(self.read_timeout, self.connect_timeout) + 5.0

    @property
    def heartbeat_ttl(self) -> float:
        """How long a heartbeat vouches for this worker: three beats, plus one write that needs a
        new connection (connect, then the handshake and the write: two replies, each as slow as
        the read timeout allows). A slow link must not make a live worker look dead: under 1 s
        of latency a beat on a fresh pooled connection took longer than one read timeout."""
        return 3 * self.heartbeat_interval + self.connect_timeout + 2 * self.read_timeout
