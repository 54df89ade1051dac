"""Run one scenario in one environment: stack → worker → warm-up → fault → heal → drain → check.

Everything that happens goes into one :class:`~chaos.history.History`; the checkers judge it
afterwards. Every run ends heal → wait → drain, so a late job is not mistaken for a lost one,
and whatever happens (a failed assertion, a crash, a cancel) the stack is healed, every worker
process is gone, and the stack is torn down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from steadfetch.chaos.checkers import Valid, Verdict, check_all, combine
from steadfetch.chaos.env.stack import EnvName, Stack, start_stack
from steadfetch.chaos.history import History, Op
from steadfetch.chaos.nemesis import blocking, run_fault, wait_for
from steadfetch.chaos.scenarios import Scenario
from steadfetch.chaos.workload.app import RECORD_ENV
from steadfetch.chaos.workload.process import Launcher, WorkerProcess
from steadfetch.chaos.workload.producer import SteadyProducer
from steadfetch.chaos.workload.records import RecordReader
from steadfetch.fetcher import Keys, RedisConnection, RetryPolicy
from steadfetch.fetcher.durability import parse_durability
from steadfetch.fetcher.keys import keys_for
from steadfetch.fetcher.registry import split_processing_key

APP = "steadfetch.chaos.workload.app:app"
RECORD_POLL = 0.1
FIRST_JOB_TIMEOUT = 30.0
SETTLE_POLL = 0.3
HOLD_POLL = 0.1
HOLD_TIMEOUT = 1.0


@dataclass
class RunResult:
    """The outcome of one scenario in one environment, ready for the reports."""

    scenario: str
    env: str
    seed: int
    verdicts: list[Verdict]
    valid: Valid
    passed: bool
    reasons: list[str]
    broken: bool
    duration: float
    run_dir: Path
    error: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    teardown: list[str] = field(default_factory=list)
    """What was still wrong after the final heal (a toxic, a disabled proxy, a live worker)."""

    @classmethod
    def skip(cls, scenario: Scenario, env: str, seed: int, reason: str) -> RunResult:
        """A scenario that could not run here (a component is missing)."""
        return cls(
            scenario.name,
            env,
            seed,
            [],
            None,
            False,
            [reason],
            scenario.broken,
            0.0,
            Path("."),
            skipped=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "env": self.env,
            "seed": self.seed,
            "valid": self.valid,
            "passed": self.passed,
            "reasons": self.reasons,
            "broken": self.broken,
            "duration": round(self.duration, 2),
            "run_dir": str(self.run_dir),
            "error": self.error,
            "skipped": self.skipped,
            "teardown": self.teardown,
            "numbers": self.numbers,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def judge(scenario: Scenario, verdicts: list[Verdict]) -> list[str]:
    """Why the verdicts do not match what the scenario expects (empty: they do)."""
    reasons = []
    for v in verdicts:
        want = scenario.expect.get(v.checker, True if scenario.strict else None)
        if want is not None and v.valid is not want:
            reasons.append(f"{v.checker}: expected {want}, got {v.label}: {v.summary}")
    return reasons


def numbers(verdicts: list[Verdict]) -> dict[str, Any]:
    """The figures of the summary table, read from the verdicts' details."""
    by = {v.checker: v.details for v in verdicts}
    return {
        "jobs": by.get("lost", {}).get("acknowledged"),
        "lost": by.get("lost", {}).get("lost"),
        "duplicates": by.get("duplicates", {}).get("duplicated"),
        "lost_by_failover": by.get("failover-loss", {}).get("lost_by_failover"),
        "recovery_s": by.get("recovery", {}).get("max_recovery_s"),
        "errors_logged": by.get("logs", {}).get("errors_logged"),
    }


def scenario_seed(seed: int, scenario: str, env: str) -> int:
    """One run's seed, derived so that ``-k NAME --seed N`` replays exactly that run."""
    return random.Random(f"{seed}:{scenario}:{env}").getrandbits(32)


class Harness:
    """The running system a fault acts on (implements :class:`chaos.nemesis.Target`)."""

    def __init__(
        self,
        scenario: Scenario,
        stack: Stack,
        history: History,
        rng: random.Random,
        run_dir: Path,
        launcher: Launcher | None = None,
    ) -> None:
        self.scenario = scenario
        self.launcher = launcher or Launcher()
        self.stack = stack
        self.history = history
        self.rng = rng
        self.run_dir = run_dir
        self.job_timeout = scenario.worker.job_timeout
        self.grace_period = scenario.worker.grace_period
        self.record_path = run_dir / "executions.jsonl"
        self.records = RecordReader(self.record_path)
        self.workers: list[WorkerProcess] = []
        self.producer = SteadyProducer(
            stack.direct_url,
            history,
            prefix=f"{scenario.name}-{rng.getrandbits(24):06x}",
            rate=scenario.rate,
            work=scenario.work,
            rng=rng,
            queues=scenario.queues,
            pad=scenario.pad,
            track_replication=scenario.sentinel or scenario.cluster,
            durability=parse_durability(scenario.durability) if scenario.durability else None,
            jitter=scenario.work_jitter,
        )
        self._open: Counter[str] = Counter()
        self._started: set[str] = set()
        self._done: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None

    # -- Target ------------------------------------------------------------------------------

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[-1]

    def worker_process(self, n: int, worker_id: str) -> WorkerProcess:
        """The ``n``-th worker under test (not started): the one place that builds it."""
        settings = self.scenario.worker
        args = ["run", APP, "--queues", ",".join(self.scenario.queues)]
        args += ["--redis-url", self.stack.proxied_url, "--log-format", "json"]
        args += ["--worker-id", worker_id, *settings.argv()]
        if self.scenario.durability:
            args += ["--durability", self.scenario.durability]
        env = self.launcher.environ(
            {
                RECORD_ENV: str(self.record_path),
                "STEADFETCH_WORKER_ID": worker_id,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return WorkerProcess(
            f"worker-{n}",
            self.launcher.argv(args),
            env,
            self.run_dir / f"worker-{n}.log",
            self.history,
            facts={**settings.facts(), "queues": list(self.scenario.queues)},
        )

    async def start_worker(self, worker_id: str | None = None) -> WorkerProcess:
        """Start one more worker (a fresh id, unless ``worker_id`` is given: a twin)."""
        assert self._tasks is not None, "inside run() only"
        n = len(self.workers) + 1
        proc = self.worker_process(n, worker_id or f"chaos-{self.scenario.name}-{n}")
        await proc.start()
        self.workers.append(proc)
        self._tasks.create_task(proc.run())
        return proc

    def in_flight(self) -> int:
        self.poll_records()
        return sum(1 for n in self._open.values() if n > 0)

    def started(self, job_id: str) -> bool:
        self.poll_records()
        return job_id in self._started

    def logged(self, pattern: str, since: float, process: str | None = None) -> bool:
        regex = re.compile(pattern)
        return any(
            op.f == "log" and op.time >= since and regex.search(str(op.value.get("message", "")))
            for op in self.history.ops()
            if op.process == (self.worker.name if process is None else process)
        )

    async def enqueue(self, **kwargs: Any) -> str:
        return await self.producer.enqueue(**kwargs)

    # -- bookkeeping -------------------------------------------------------------------------

    def poll_records(self) -> None:
        for op in self.records.read_new():
            job = str(op.value["job_id"])
            if op.type == "invoke":
                self._open[job] += 1
                self._started.add(job)
            else:
                self._open[job] -= 1
                self._done.add(job)
            self.history.add(op)

    def executed(self) -> int:
        return len(self._done)

    def outstanding(self) -> set[str]:
        """Jobs whose enqueue Redis acknowledged and that have not finished yet."""
        self.poll_records()
        ops = self.history.ops()
        known = {str(op.value["job_id"]) for op in ops if op.f == "enqueue" and op.type == "ok"}
        return known - self._done

    def phase(self, name: str) -> None:
        self.history.record("runner", "phase", "ok", phase=name)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.scenario
        stop_polling = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = tg
                tg.create_task(self._poll_until(stop_polling))
                tg.create_task(self._sample_holding(stop_polling))
                try:
                    if s.backlog:
                        await self.producer.preload(s.backlog)
                    producing = tg.create_task(self.producer.run())
                    self.phase("warm-up")
                    for _ in range(s.workers):
                        await self.start_worker()
                    await wait_for(lambda: self.executed() > 0, FIRST_JOB_TIMEOUT, "first job")
                    await asyncio.sleep(s.warmup)
                    self.phase("fault")
                    await run_fault(s.fault, self)
                    self.phase("after heal")
                    await asyncio.sleep(s.after)
                    self.producer.stop()
                    await producing
                    self.phase("drain")
                    await self._drain(s.drain)
                    self.phase("stop")
                    async with asyncio.TaskGroup() as stopping:
                        for proc in self.workers:
                            if proc.running:
                                stopping.create_task(proc.terminate(grace=s.worker.grace_period))
                finally:
                    self.producer.stop()
                    for proc in self.workers:
                        proc.kill_now()
                    stop_polling.set()
        finally:
            self._tasks = None
            await self.producer.close()
            self.poll_records()

    async def _poll_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.poll_records()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECORD_POLL)

    async def _sample_holding(self, stop: asyncio.Event) -> None:
        """Record what each worker's processing lists hold, every HOLD_POLL s, read from Redis
        directly (not through the proxy): the ``holding`` checker judges the samples. A sample
        that fails (Redis itself faulty) is skipped: the next one is taken on time."""
        conn = RedisConnection.from_url(
            self.stack.direct_url, retry=RetryPolicy(deadline=HOLD_POLL), name="chaos-holding"
        )
        try:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(HOLD_TIMEOUT):
                        lists = await conn.execute("sampling processing lists", processing_lengths)
                except Exception:  # noqa: BLE001 -- Redis itself may be faulty: sample skipped
                    lists = None
                if lists is not None:
                    self.history.record("runner", "holding", "ok", lists=lists)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), HOLD_POLL)
        finally:
            await conn.close()

    async def _drain(self, limit: float) -> None:
        """Wait (with a deadline) until every acknowledged job has finished, and then until no
        finished job is left in Redis (a dead worker's finished-but-unacked jobs are recovered
        and run again by a live one: at-least-once, licensed by the death)."""
        deadline = time.monotonic() + limit
        try:
            await wait_for(lambda: not self.outstanding(), limit, "drain")
            left = await self._settle(deadline)
        except TimeoutError:
            self.history.record(
                "runner", "drain", "info", outstanding=len(self.outstanding()), limit=limit
            )
        else:
            self.history.record("runner", "drain", "ok", finished_in_redis=left)

    async def _settle(self, deadline: float) -> int:
        """Poll until Redis holds no finished job or ``deadline``; returns how many it holds."""
        while True:
            left = await self._finished_in_redis()
            if not left or time.monotonic() >= deadline:
                return left
            await asyncio.sleep(SETTLE_POLL)

    async def _finished_in_redis(self) -> int:
        try:
            where = await locate(self.stack.direct_url)
        except Exception:  # noqa: BLE001 -- Redis itself may be faulty here: judged at the end
            return 0
        self.poll_records()
        return len(self._done & where.keys())

    async def inspect(self) -> None:
        """After the final stop, where is every job still in Redis? (Read directly.) The final
        state is judged (nothing finished may be left); the unfinished ones go in the report."""
        running = [w.name for w in self.workers if w.running]
        try:
            where = await locate(self.stack.direct_url)
        except Exception as exc:  # noqa: BLE001 -- recorded: the checker says "unknown"
            self.history.record("runner", "final-state", "info", error=_describe(exc))
            return
        self.history.record("runner", "final-state", "ok", where=where, running=running)
        missing = self.outstanding()
        if missing:
            found = {job: place for job, place in where.items() if job in missing}
            self.history.record("runner", "inspect", "ok", where=found)


async def locate(url: str) -> dict[str, str]:
    """Every job in Redis and where it sits: ``queue:NAME``, ``processing:WORKER:QUEUE-KEY``,
    ``scheduled``, ``dead`` (read directly, not through the proxy). On a Redis Cluster the
    scheduled zsets and dead-letter lists are per queue: every one found is read."""
    conn = RedisConnection.from_url(url, retry=RetryPolicy(deadline=5.0), name="chaos-inspect")
    keys = keys_for(conn)
    try:

        async def scan(r: Any) -> dict[str, list[bytes]]:
            places: dict[str, list[bytes]] = {"scheduled": [], "dead": []}
            if keys.cluster:
                for kind in ("scheduled", "dead"):
                    async for key in r.scan_iter(match=f"{keys.prefix}:{kind}:{{*}}"):
                        read = r.zrange(key, 0, -1) if kind == "scheduled" else r.lrange(key, 0, -1)
                        places[kind] += await read
            else:
                places["scheduled"] = await r.zrange(keys.scheduled, 0, -1)
                places["dead"] = await r.lrange(keys.dead, 0, -1)
            async for key in r.scan_iter(match=keys.queue_key("*")):
                name = keys.queue_name(key.decode() if isinstance(key, bytes) else key)
                places[f"queue:{name}"] = await r.lrange(key, 0, -1)
            async for key in r.scan_iter(match=keys.processing_prefix + "*"):
                text = key.decode() if isinstance(key, bytes) else key
                places[f"processing:{text.removeprefix(keys.processing_prefix)}"] = await r.lrange(
                    key, 0, -1
                )
            return places

        places = await conn.execute("locating jobs", scan)
    finally:
        await conn.close()
    found: dict[str, str] = {}
    for place, payloads in places.items():
        for payload in payloads:
            job = _job_id(payload)
            if job is not None:
                found[job] = place
    return found


async def processing_lengths(r: Any) -> dict[str, int]:
    """Jobs in each worker's processing lists (summed over its queues), by worker id.

    The lengths are read in one MULTI/EXEC, so they are one instant's: read one by one, a
    worker could ack the jobs of a list already counted and fetch as many into one not yet
    counted, and the sum would exceed what it ever held (seen: 11 held by a window of 8)."""
    keys = Keys()
    names = [key async for key in r.scan_iter(match=keys.processing_prefix + "*")]
    pipe = r.pipeline(transaction=True)
    for key in names:
        pipe.llen(key)
    lengths = await pipe.execute() if names else []
    held: Counter[str] = Counter()
    for key, length in zip(names, lengths, strict=True):
        text = key.decode() if isinstance(key, bytes) else key
        split = split_processing_key(replace(keys, cluster=text.endswith("}")), text)
        worker_id = split[0] if split else text.removeprefix(keys.processing_prefix)
        held[worker_id] += int(length)
    return dict(held)


def _job_id(payload: bytes | str) -> str | None:
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if isinstance(body, dict) and "raw" in body:  # a dead-letter entry wraps the payload
        return _job_id(body["raw"])
    return str(body.get("id")) if isinstance(body, dict) else None


@contextmanager
def capture_logs(path: Path) -> Iterator[None]:
    """The runner's own fetcher (producer, inspection) logs to ``path``, not the console."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fetcher")
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = saved
        handler.close()


async def run_scenario(
    scenario: Scenario,
    env: EnvName,
    *,
    seed: int,
    workdir: Path | None = None,
    on_op: Callable[[Op], None] | None = None,
    launcher: Launcher | None = None,
) -> RunResult:
    """Run ``scenario`` in ``env`` and judge it. Raises ComponentMissing when ``env`` can't run."""
    run_seed = scenario_seed(seed, scenario.name, env)
    run_dir = Path(tempfile.mkdtemp(prefix=f"steadfetch-chaos-{env}-{scenario.name}-", dir=workdir))
    history = History()
    if on_op is not None:
        history.subscribe(on_op)
    started = time.monotonic()
    error: str | None = None
    history.record("runner", "phase", "ok", phase="start stack", env=env, seed=run_seed)
    stack = await blocking(
        lambda: start_stack(
            env, appendonly=True, sentinel=scenario.sentinel, cluster=scenario.cluster
        )
    )
    leftovers: list[str] = []
    try:
        with capture_logs(run_dir / "runner.log"):
            harness = Harness(scenario, stack, history, random.Random(run_seed), run_dir, launcher)
            try:
                await harness.run()
                await harness.inspect()
            except Exception as exc:  # noqa: BLE001 -- judged below: the history tells what broke
                error = _describe(exc)
                history.record("runner", "error", "info", error=error)
        leftovers += [f"{w.name} (pid {w.pid}) still running" for w in harness.workers if w.running]
    finally:
        try:
            await blocking(stack.heal)
            leftovers += await blocking(lambda: unhealed(stack))
        finally:
            await blocking(stack.close)
    ops = history.ops()
    history.write_jsonl(run_dir / "history.jsonl")
    verdicts = check_all(ops, scenario.limits)
    reasons = judge(scenario, verdicts)
    if error is not None:
        reasons.insert(0, f"harness error: {error}")
    reasons += [f"teardown: {problem}" for problem in leftovers]
    result = RunResult(
        scenario=scenario.name,
        env=env,
        seed=run_seed,
        verdicts=verdicts,
        valid=combine(verdicts),
        passed=not reasons,
        reasons=reasons,
        broken=scenario.broken,
        duration=time.monotonic() - started,
        run_dir=run_dir,
        error=error,
        numbers=numbers(verdicts),
        teardown=leftovers,
    )
    (run_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


def unhealed(stack: Stack) -> list[str]:
    """What a heal left behind (it must be nothing): toxics, a disabled proxy."""
    problems = [f"toxic {t['name']} still applied" for t in stack.proxy.toxics()]
    if not stack.proxy.enabled:
        problems.append("proxy still disabled")
    return problems


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def cleanup(result: RunResult) -> None:
    """Remove a passed run's directory (failed ones are kept for the post-mortem)."""
    if result.passed:
        shutil.rmtree(result.run_dir, ignore_errors=True)
