"""The mutation catalogue: realistic bugs the chaos suite must catch, and where it catches them.

Each :class:`~chaos.mutate.Mutant` is the kind of one-line bug a developer writes in a hurry,
applied to a scratch copy of ``fetcher/`` and ``worker/`` only (see :mod:`chaos.mutate`). Its
``catches`` lists the cheapest scenario(s) that kill it; the whole catalogue must stay within a
few minutes, so each mutant gets one scenario unless a second is needed.

The first two entries are the configurations the catalogue has always carried as proof that the
checkers can fail (``broken-*`` scenarios): they change no source.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace

from steadfetch.chaos.mutate import Mutant, MutantError
from steadfetch.chaos.nemesis import Target, WorkerFault, blocking
from steadfetch.chaos.scenarios import BY_NAME, Scenario

MUTANTS: tuple[Mutant, ...] = (
    # --- the deliberately broken configurations ----------------------------------------------
    Mutant(
        "config-no-read-timeout",
        "timeouts",
        None,
        "",
        "",
        ("broken-no-read-timeout",),
        "--read-timeout 0 --watchdog-timeout 0 under a black hole: the fetch hangs for ever",
    ),
    Mutant(
        "config-fast-mode-kill",
        "fetch",
        None,
        "",
        "",
        ("broken-fast-kill",),
        "--mode fast (destructive pops) and a worker SIGKILL: the popped jobs die with it",
    ),
    # --- acks ----------------------------------------------------------------------------------
    Mutant(
        "ack-never-sent",
        "ack",
        "worker/acks.py",
        "            await self._ack_many(batch)\n",
        "            self._ack_many(batch)  # mutant: the await is missing, nothing is sent\n",
        ("cut",),
        "a worker that never sends its acks (a missing await): finished jobs stay in its "
        "processing list and are requeued and run again at its next stop",
    ),
    Mutant(
        "ack-trim-keeps-the-acked",
        "ack",
        "fetcher/lua/ack.lua",
        "redis.call('LTRIM', key, n, -1)",
        "redis.call('LTRIM', key, 0, n - 1)",
        ("cut",),
        "LTRIM read as 'remove this range' (it keeps it): the batched ack keeps the acked jobs "
        "and drops the ones still running from the processing list",
    ),
    # --- fetch ---------------------------------------------------------------------------------
    Mutant(
        "fetch-batch-not-kept",
        "fetch",
        "fetcher/lua/fetch.lua",
        "      redis.call('RPUSH', KEYS[n + i], unpack(items, s, math.min(s + 999, to)))\n",
        "      -- mutant: no RPUSH into the processing list (an LPOP that keeps nothing)\n",
        ("worker-kill-backlog",),
        "the reliable batch fetch pops jobs without pushing them into the processing list: "
        "at-most-once in disguise, a crash loses every batched job in flight",
    ),
    Mutant(
        "fetch-orphans-never-adopted",
        "fetch",
        "fetcher/fetch.py",
        "                if self._adoption.orphans_possible:\n                    adopted = await",
        "                if False:  # mutant: orphans from a lost reply are never adopted\n"
        "                    adopted = await",
        # Replies cut after 2 KB while batches of 8 are fetched from a backlog: fetch replies
        # are lost after the script moved a batch, every time (blackhole-down depends on jobs
        # being queued when the retried fetch runs: it survived once in CI).
        ("limit-data-backlog", "blackhole-down"),
        "a job moved by a fetch whose reply was lost sits in the processing list, held by "
        "nobody, until the worker stops",
    ),
    Mutant(
        "fetch-ignores-free-slots",
        "fetch",
        "worker/worker.py",
        "jobs = await fetch(wanted)",
        "jobs = await fetch(self.config.concurrency)  # mutant",
        ("cut-backlog",),
        "the fetch asks for a full batch, not for the free slots (the seed system's LPOP 20): a "
        "busy worker holds up to twice its window (the holding checker counts its lists)",
    ),
    Mutant(
        "fetch-priority-reversed",
        "fetch",
        "fetcher/lua/fetch.lua",
        "for i = 1, n do",
        "for i = n, 1, -1 do",
        ("cut-backlog",),
        "the batched fetch walks the queues lowest priority first (the priority checker sees "
        "high jobs wait while low ones are fetched)",
    ),
    # --- timeouts ------------------------------------------------------------------------------
    Mutant(
        "timeout-blocking-no-margin",
        "timeouts",
        "fetcher/connection.py",
        "    return block_timeout + max(BLOCK_MARGIN_MIN, BLOCK_MARGIN_FRACTION * block_timeout)\n",
        "    return block_timeout  # mutant: no margin over the server-side block\n",
        ("latency",),
        "a blocking call's read timeout without its margin: the client gives up exactly when "
        "the server answers, so an idle or slow link looks like an outage",
    ),
    Mutant(
        "timeout-blocking-none",
        "timeouts",
        "fetcher/connection.py",
        "            timeout = blocking_read_timeout(block_timeout)\n",
        "            timeout = None  # mutant: blocking calls without any read timeout\n",
        ("blackhole-idle",),
        "blocking calls without any read timeout: a half-open socket hangs the fetch until the "
        "watchdog, the last resort, notices",
    ),
    Mutant(
        "timeout-none-at-all",
        "timeouts",
        "fetcher/connection.py",
        '            "socket_timeout": socket_timeout,\n',
        '            "socket_timeout": None,  # mutant: no read timeout on any socket\n',
        ("blackhole-down",),
        "no read timeout on any call (the option built but never passed to redis-py)",
    ),
    Mutant(
        "timeout-job-ignored",
        "timeouts",
        "worker/worker.py",
        "        scope = asyncio.timeout(timeout)\n",
        "        scope = asyncio.timeout(None)  # mutant: the job timeout is not applied\n",
        ("job-timeout",),
        "the job timeout is computed but never applied: a hung handler holds its slot for ever",
    ),
    # --- retry ---------------------------------------------------------------------------------
    Mutant(
        "retry-backoff-uncapped",
        "retry",
        "fetcher/retry.py",
        "        full = min(self.cap, self.base * 2.0 ** min(attempt - 1, 62))\n",
        "        full = self.base * 2.0 ** min(attempt - 1, 62)  # mutant: no cap\n",
        ("cut",),
        "the retry backoff without its cap: after a long outage the next attempt is minutes away",
    ),
    Mutant(
        "retry-timeouts-fatal",
        "retry",
        "fetcher/failures.py",
        "    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError | EOFError):\n",
        "    if isinstance(exc, rx.ConnectionError | OSError | EOFError):  # mutant\n",
        ("blackhole-down",),
        "redis-py's TimeoutError left out of the retryable failures: a read timeout ends the "
        "worker as a configuration error",
    ),
    Mutant(
        "retry-scheduled-never-promoted",
        "retry",
        "worker/worker.py",
        "            promoted = await self.fetcher.promote_due()\n",
        "            promoted = 0  # mutant: the scheduler loop never promotes\n",
        ("job-timeout",),
        "failed jobs are scheduled for a retry that never comes: the scheduler loop does nothing",
    ),
    # --- recovery ------------------------------------------------------------------------------
    Mutant(
        "recovery-takes-the-living",
        "recovery",
        "fetcher/lua/recover.lua",
        "redis.call('EXISTS', ARGV[1] .. wid) == 0",
        "redis.call('EXISTS', ARGV[1] .. wid) == 1",
        ("latency-2w",),
        "the recovery script's test inverted: it recovers live workers and leaves the dead ones' "
        "jobs in their processing lists",
    ),
    Mutant(
        "recovery-loop-idle",
        "recovery",
        "worker/worker.py",
        "await asyncio.sleep(self.config.recovery_interval)",
        "await asyncio.sleep(self.config.recovery_interval * 1000)",
        ("worker-kill",),
        "the recovery loop's interval turned into milliseconds: a worker that died after the "
        "others started keeps its jobs for a thousand intervals",
    ),
    # --- heartbeats ----------------------------------------------------------------------------
    Mutant(
        "heartbeat-ttl-below-interval",
        "heartbeats",
        "worker/config.py",
        "        return 3 * self.heartbeat_interval + "
        "self.connect_timeout + 2 * self.read_timeout\n",
        "        return self.heartbeat_interval / 2  # mutant: expires between two beats\n",
        ("latency-2w",),
        "a heartbeat TTL shorter than the heartbeat interval: a live worker looks dead half the "
        "time and another worker takes its running jobs",
    ),
    Mutant(
        "heartbeat-ttl-converted-twice",
        "heartbeats",
        "fetcher/registry.py",
        "    return max(1, int(seconds * 1000))\n",
        "    return max(1, int(seconds * 1000 * 1000))  # mutant: converted twice\n",
        ("worker-kill",),
        "a TTL converted to milliseconds twice: a dead worker's heartbeat lives a thousand times "
        "too long and its jobs are never recovered",
    ),
    # --- watchdog ------------------------------------------------------------------------------
    Mutant(
        "watchdog-never-fires",
        "watchdog",
        "worker/watchdog.py",
        "            why = self._stuck_because(limit) if stuck_for > limit else None\n",
        "            why = None  # mutant: never judged stuck\n",
        ("watchdog-blackhole",),
        "the watchdog never judges a fetch stuck: a stuck fetch goes unnoticed",
    ),
    Mutant(
        "watchdog-limit-too-short",
        "watchdog",
        "worker/config.py",
        "        return self.block_timeout + max(self.read_timeout, self.connect_timeout) + 5.0\n",
        "        return self.block_timeout  # mutant: forgets the reply's own time\n",
        ("latency",),
        "the watchdog's limit is only the block timeout, forgetting the time a reply takes: it "
        "resets healthy slow fetches",
    ),
    # --- shutdown ------------------------------------------------------------------------------
    Mutant(
        "shutdown-no-ack-flush",
        "shutdown",
        "worker/shutdown.py",
        '        ("acking finished jobs", acks.flush)\n',
        "            # mutant: the last ack flush is forgotten\n",
        # Only acks not yet sent when the drain ends show the bug: writes paused across the
        # drain keep them unsent (without the pause, restart-under-load and sigterm-restart
        # both missed it in one CI run: a race).
        ("sigterm-write-pause", "sigterm-restart"),
        "a shutdown that forgets its last ack flush: the jobs that finished last are requeued "
        "and run again by the next worker",
    ),
    Mutant(
        "shutdown-no-deadline",
        "shutdown",
        "worker/cancellation.py",
        "    scope = asyncio.timeout_at(deadline)\n",
        "    scope = asyncio.timeout_at(None)  # mutant: cleanup steps without a deadline\n",
        ("sigterm-outage",),
        "shutdown steps without their deadline: SIGTERM during an outage waits for Redis for ever",
    ),
    Mutant(
        "shutdown-requeue-wrong-key",
        "shutdown",
        "fetcher/lua/requeue_processing.lua",
        "give_back_list(KEYS[1], KEYS[2], KEYS[3], ARGV[1])",
        "give_back_list(KEYS[1], KEYS[3], KEYS[3], ARGV[1])",
        ("double-sigterm",),
        "giving unfinished jobs back at shutdown moves them into the wake list, not the queue",
    ),
    # --- logging -------------------------------------------------------------------------------
    Mutant(
        "log-outage-line-vague",
        "logging",
        "fetcher/state.py",
        'f"Redis {endpoint} unreachable while {operation}: {cause} "',
        'f"Redis unreachable: {cause} "',
        ("cut",),
        "the retry line without endpoint and operation: an operator cannot tell what failed",
    ),
    Mutant(
        "log-no-recovery-line",
        "logging",
        "fetcher/state.py",
        '        log.warning(\n            "Redis %s reachable again after',
        '        log.debug(\n            "Redis %s reachable again after',
        ("cut",),
        "the recovery line logged at DEBUG: an operator never learns the outage ended",
    ),
)

# --- scenarios only the mutation catalogue needs ---------------------------------------------


@dataclass(frozen=True)
class RestartUnderLoad(WorkerFault):
    """One SIGTERM while jobs run on a slow link (a graceful stop: exit 0 within the grace
    period), then a new worker: whatever the first one finished must not run again.

    The latency (on replies: nothing is lost, so no duplicate is licensed) keeps acks in flight
    long enough that some jobs finish with their ack still unsent when the runners are done.
    """

    duration: float = 1.0
    latency_ms: int = 100

    async def apply(self, t: Target) -> str:
        await blocking(
            lambda: t.stack.proxy.add_toxic(
                "latency", stream="downstream", name=f"{self.name}_latency", latency=self.latency_ms
            )
        )
        running = await self.jobs_in_flight(t)
        within = t.grace_period + 5.0
        t.worker.signal(signal.SIGTERM, expect_codes=[0], within=within)
        await t.worker.wait_exit(within + 2.0)
        return (
            f"{self.latency_ms} ms latency on replies; sent {t.worker.name} one SIGTERM with "
            f"{running} jobs running"
        )


EXTRA_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "restart-under-load",
        RestartUnderLoad(
            "restart-under-load", "one SIGTERM while jobs run, then a new worker: no job reruns"
        ),
        rate=10.0,
        work=0.3,
    ),
    Scenario(
        "blackhole-idle",
        replace(
            BY_NAME["blackhole-down"].fault,
            name="blackhole-idle",
            description="replies vanish while the worker idles in a blocking fetch (2 jobs/s)",
        ),
        rate=2.0,
    ),
)


def scenario(name: str) -> Scenario:
    """A scenario by name: the chaos catalogue's, or one defined here."""
    found = BY_NAME.get(name) or next((s for s in EXTRA_SCENARIOS if s.name == name), None)
    if found is None:
        raise MutantError(f"no scenario named {name!r} (chaos/scenarios.py or chaos/mutants.py)")
    return found
