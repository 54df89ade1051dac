"""Checkers: pure functions from a history to a verdict (valid true / false / unknown).

Nothing here touches Redis, a process or a clock; each checker reads the operations of
:mod:`chaos.history` and judges one invariant. A checker that raises is reported as *unknown*
with the exception, never as a pass (:func:`guarded`). :func:`check_all` runs them all and
:func:`combine` merges the verdicts the way Jepsen's ``compose`` does: any false is false, else
any unknown is unknown, else true.
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steadfetch.chaos.failover import split_lost
from steadfetch.chaos.history import Op, select

Valid = bool | None  # None: unknown
EXAMPLES = 10  # how many offending items a verdict lists


@dataclass(frozen=True)
class Verdict:
    checker: str
    valid: Valid
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return {True: "valid", False: "INVALID", None: "unknown"}[self.valid]

    def to_dict(self) -> dict[str, Any]:
        return {
            "checker": self.checker,
            "valid": self.valid,
            "summary": self.summary,
            "details": dict(self.details),
        }


Checker = Callable[[Sequence[Op]], Verdict]


def guarded(name: str, checker: Checker, history: Sequence[Op]) -> Verdict:
    """Run ``checker``; a crash is an *unknown* verdict carrying the traceback, not a pass."""
    try:
        return checker(history)
    except Exception as exc:  # noqa: BLE001 -- any checker bug must surface as "unknown"
        return Verdict(
            name,
            None,
            f"checker crashed: {exc.__class__.__name__}: {exc}",
            {"traceback": traceback.format_exc()},
        )


def combine(verdicts: Sequence[Verdict]) -> Valid:
    values = [v.valid for v in verdicts]
    if False in values:
        return False
    if None in values:
        return None
    return True


# --- fault windows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One fault, from its start to its heal (``stop`` is None when it was never healed)."""

    fault: str
    start: float
    stop: float | None
    ambiguous: bool
    outage: bool
    expect_recovery: bool
    noisy: bool = False
    """Failure lines are expected here (an outage, or a fault that may look like one)."""
    progress: bool = False
    """Work must go on during the fault (slow or degraded, never stopped)."""
    rolls_back: bool = False
    """Redis may undo acknowledged writes here (a failover)."""


def fault_windows(history: Sequence[Op]) -> list[Window]:
    """Pair each ``fault-start`` with the next ``fault-stop`` of the same fault."""
    windows: list[Window] = []
    open_: dict[str, Op] = {}
    for op in history:
        name = str(op.value.get("fault", "?"))
        if op.f == "fault-start":
            open_[name] = op
        elif op.f == "fault-stop" and name in open_:
            start = open_.pop(name)
            windows.append(_window(start, op))
    windows.extend(_window(start, None) for start in open_.values())
    return sorted(windows, key=lambda w: w.start)


def _window(start: Op, stop: Op | None) -> Window:
    return Window(
        fault=str(start.value.get("fault", "?")),
        start=start.time,
        stop=stop.time if stop else None,
        ambiguous=bool(start.value.get("ambiguous", True)),
        outage=bool(start.value.get("outage", False)),
        expect_recovery=bool(stop.value.get("expect_recovery", True)) if stop else True,
        noisy=bool(start.value.get("noisy", start.value.get("outage", False))),
        progress=bool(start.value.get("progress", False)),
        rolls_back=bool(start.value.get("rolls_back", False)),
    )


# --- lost jobs -----------------------------------------------------------------------------


def check_lost(history: Sequence[Op]) -> Verdict:
    """Every job whose enqueue was acknowledged finished at least once (Jepsen's queue checker).

    Enqueues that ended *info* (unknown) are not required, but reported as ``recovered`` when
    they did run. A job that ran without any enqueue attempt is ``unexpected``. A job that ended
    in the dead-letter list is reported apart from the lost ones and also makes the run invalid.
    """
    attempted = {str(op.value["job_id"]) for op in select(history, "enqueue", "invoke")}
    acked = {str(op.value["job_id"]) for op in select(history, "enqueue", "ok")}
    unknown = {str(op.value["job_id"]) for op in select(history, "enqueue", "info")} - acked
    failed = {str(op.value["job_id"]) for op in select(history, "enqueue", "fail")}
    done = {str(op.value["job_id"]) for op in select(history, "execute", "ok")}
    where: dict[str, str] = {}
    for op in select(history, "inspect"):
        where.update({str(k): str(v) for k, v in dict(op.value.get("where", {})).items()})
    dead = {job for job, place in where.items() if place == "dead"} & (acked - done)
    split = split_lost(history, acked - done - dead)  # a Sentinel failover's own losses apart
    lost = split.by_worker
    unexpected = sorted(done - attempted)
    details = {
        "attempted": len(attempted),
        "acknowledged": len(acked),
        "unknown": len(unknown),
        "failed": len(failed),
        "executed": len(done),
        "recovered": len(unknown & done),
        "lost": len(lost),
        "lost_ids": lost[:EXAMPLES],
        "lost_where": {job: where.get(job, "nowhere") for job in lost[:EXAMPLES]},
        "dead_lettered": sorted(dead)[:EXAMPLES],
        "unexpected": unexpected[:EXAMPLES],
        "lost_by_failover": len(split.by_failover),
        "lost_by_failover_ids": split.by_failover[:EXAMPLES],
        "failover_evidence": split.evidence,
    }
    if not acked:
        return Verdict("lost", None, "no enqueue was acknowledged: nothing to judge", details)
    problems = []
    if lost:
        places = sorted({where.get(job, "nowhere") for job in lost})
        problems.append(f"{len(lost)} of {len(acked)} jobs LOST (now in: {', '.join(places)})")
    if dead:
        problems.append(f"{len(dead)} dead-lettered")
    if unexpected:
        problems.append(f"{len(unexpected)} executed but never enqueued")
    if problems:
        return Verdict("lost", False, "; ".join(problems), details)
    if split.by_failover:
        return Verdict(
            "lost",
            True,
            f"no job lost by the worker; {len(split.by_failover)} of {len(acked)} lost by the "
            "failover (acknowledged by the old primary beyond the replication offset the "
            "promoted replica had: see failover-loss)",
            details,
        )
    return Verdict("lost", True, f"all {len(acked)} acknowledged jobs executed", details)


def check_failover_loss(history: Sequence[Op]) -> Verdict:
    """Jobs lost by a Sentinel failover (Redis acknowledged them, the promoted replica never had
    them: the offsets say so). Allowed without durability (asynchronous replication), reported
    with the count; with ``--durability`` on the producer none may be lost."""
    failovers = list(select(history, "failover", "ok"))
    if not failovers:
        return Verdict("failover-loss", True, "no failover in this run")
    acked = {str(op.value["job_id"]) for op in select(history, "enqueue", "ok")}
    done = {str(op.value["job_id"]) for op in select(history, "execute", "ok")}
    split = split_lost(history, acked - done)
    durable = any(op.value.get("durability") for op in select(history, "enqueue", "ok"))
    details = {
        "lost_by_failover": len(split.by_failover),
        "lost_by_worker": len(split.by_worker),
        "durability": durable,
        **split.evidence,
    }
    summary = (
        f"{len(split.by_failover)} of {len(acked)} acknowledged jobs lost by the failover, "
        f"{len(split.by_worker)} by the worker"
        + (" (durability on: none may be lost)" if durable else " (no durability: allowed)")
    )
    return Verdict("failover-loss", not (durable and split.by_failover), summary, details)


# --- duplicates ----------------------------------------------------------------------------

AMBIGUITY_SLACK = 5.0  # an ack lost at a window's end may be redelivered a little later
GAVE_UP = re.compile(r"gave up at the grace deadline", re.I)
UNBOUNDED = 10**9


@dataclass(frozen=True)
class Holder:
    """A worker that lost what it held: it died, or was frozen (SIGSTOP) for a while.

    Jobs it had started may run again elsewhere, at most ``budget`` of them (what one worker can
    hold: its window and its unsent acks). ``start``/``stop`` are the death time (both), or the
    freeze and the resume.
    """

    worker_id: str
    pid: int | None
    start: float
    stop: float
    budget: int
    why: str

    def ran(self, run: Run) -> bool:
        """Whether ``run`` was this holder's own execution (by pid when both know it)."""
        if self.pid is not None and run.pid is not None:
            return self.pid == run.pid
        return self.worker_id == run.worker


@dataclass(frozen=True)
class Run:
    """One execution of a job: who, when it started, when it finished (None: never)."""

    worker: str
    pid: int | None
    start: float
    done: float | None


def worker_starts(history: Sequence[Op]) -> dict[str, Op]:
    """``worker-start`` operations by process name (``worker-1``...)."""
    return {op.process: op for op in select(history, "worker-start")}


def holders(history: Sequence[Op]) -> list[Holder]:
    """Who lost what they held: every worker exit except a graceful one (exit 0 without the
    give-up-at-the-grace-deadline line), and every freeze of a worker."""
    starts = worker_starts(history)
    gave_up = {
        op.process for op in select(history, "log") if GAVE_UP.search(str(op.value.get("message")))
    }
    found: list[Holder] = []
    for ex in select(history, "worker-exit"):
        code = ex.value.get("code")
        start = starts.get(ex.process)
        if start is None or (code == 0 and ex.process not in gave_up):
            continue
        why = f"{ex.process} exited {code}" + (" after giving up" if code == 0 else "")
        found.append(_holder(start, ex.time, ex.time, why))
    freezes: dict[str, Op] = {}
    for op in select(history, "freeze"):
        target = str(op.value.get("target"))
        if op.type == "invoke":
            freezes[target] = op
        elif target in freezes and target in starts:
            began = freezes.pop(target).time
            found.append(_holder(starts[target], began, op.time, f"{target} frozen"))
    end = max((op.time for op in history), default=0.0)
    found += [
        _holder(starts[t], op.time, end, f"{t} frozen, never resumed")
        for t, op in freezes.items()
        if t in starts
    ]
    return found


def _holder(start: Op, began: float, stop: float, why: str) -> Holder:
    pid = start.value.get("pid")
    return Holder(
        worker_id=str(start.value.get("worker_id") or start.process),
        pid=int(pid) if pid is not None else None,
        start=began,
        stop=stop,
        budget=int(start.value.get("holds", UNBOUNDED)),
        why=why,
    )


def executions(history: Sequence[Op]) -> dict[str, list[Run]]:
    """Each job's executions in start order; an ``ok`` closes the same worker's open one."""
    runs: dict[str, list[Run]] = defaultdict(list)
    for op in select(history, "execute"):
        job = str(op.value["job_id"])
        pid = op.value.get("pid")
        pid = int(pid) if pid is not None else None
        if op.type == "invoke":
            runs[job].append(Run(op.process, pid, op.time, None))
        elif op.type == "ok":
            mine = [
                i
                for i, r in enumerate(runs[job])
                if r.done is None and r.worker == op.process and (pid is None or r.pid == pid)
            ]
            if mine:
                i = mine[-1]
                runs[job][i] = Run(op.process, pid, runs[job][i].start, op.time)
            else:  # a finish without its start (tests, a torn record): starts when it ends
                runs[job].append(Run(op.process, pid, op.time, op.time))
    return runs


def check_duplicates(history: Sequence[Op]) -> Verdict:
    """Jobs that finished more than once; allowed only where at-least-once allows them.

    A second completion is *licensed* by:

    - a worker that lost what it held (died: any exit but a graceful one; a graceful exit 0
      licenses nothing unless it logged that it gave up at its grace deadline; or was frozen):
      only jobs that worker itself had started, run again by another worker after the loss, and
      at most the worker's ``holds`` of them (window + unsent acks), recorded at its start;
    - an ambiguous fault active between the first completion and the second start (a reply,
      e.g. the ack's, may have been lost).

    Anything else is an unlicensed duplicate: e.g. a shutdown that puts finished jobs back.
    """
    runs = executions(history)
    windows = [w for w in fault_windows(history) if w.ambiguous]
    lost_holders = holders(history)

    def by_fault(first_done: float, second_start: float) -> bool:
        return any(
            w.start <= second_start and first_done <= (w.stop or second_start) + AMBIGUITY_SLACK
            for w in windows
        )

    def by_holder(job_runs: list[Run]) -> Holder | None:
        for h in lost_holders:
            own = [r for r in job_runs if h.ran(r) and r.start <= h.stop]
            again = [r for r in job_runs if not h.ran(r) and r.start >= h.start]
            if own and again:
                return h
        return None

    duplicated: list[str] = []
    unlicensed: list[str] = []
    used: dict[Holder, list[str]] = defaultdict(list)
    for job, job_runs in sorted(runs.items()):
        done = sorted(r.done for r in job_runs if r.done is not None)
        if len(done) < 2:
            continue
        duplicated.append(job)
        starts = sorted(r.start for r in job_runs)
        faults = True
        for first, second in itertools.pairwise(done):
            second_start = max((s for s in starts if s <= second), default=second)
            faults = faults and by_fault(first, second_start)
        if faults:
            continue
        holder = by_holder(job_runs)
        if holder is None:
            unlicensed.append(job)
        else:
            used[holder].append(job)
    over = {h: jobs for h, jobs in used.items() if len(jobs) > h.budget}
    for h, jobs in over.items():
        unlicensed += jobs[h.budget :]
    details = {
        "duplicated": len(duplicated),
        "licensed": len(duplicated) - len(unlicensed),
        "unlicensed": len(unlicensed),
        "examples": sorted(unlicensed or duplicated)[:EXAMPLES],
        "by_holder": {h.why: len(jobs) for h, jobs in used.items()},
    }
    if unlicensed:
        reasons = [
            f"{h.why} licensed {len(jobs)} reruns but could hold at most {h.budget}"
            for h, jobs in over.items()
        ]
        return Verdict(
            "duplicates",
            False,
            f"{len(unlicensed)} jobs ran twice with no worker death, freeze or ambiguous fault "
            f"to license it" + (f" ({'; '.join(reasons)})" if reasons else ""),
            details,
        )
    if duplicated:
        return Verdict(
            "duplicates",
            True,
            f"{len(duplicated)} duplicates, all after a worker death or ambiguous fault",
            details,
        )
    return Verdict("duplicates", True, "no job ran twice", details)


# --- final state ---------------------------------------------------------------------------


def check_final_state(history: Sequence[Op]) -> Verdict:
    """After the final stop (drained, every worker stopped) no job that ran is still in Redis.

    Reads the ``final-state`` operation the runner records from Redis directly (job id -> where:
    ``queue:NAME``, ``processing:KEY``, ``scheduled``, ``dead``). A finished job still there was
    never acknowledged: the next worker would silently run it again.
    """
    finals = list(select(history, "final-state"))
    if not finals:
        return Verdict("final-state", None, "Redis was not read after the final stop", {})
    last = finals[-1]
    if last.type != "ok":
        return Verdict("final-state", None, f"could not read Redis: {last.value.get('error')}", {})
    running = list(last.value.get("running", []))
    where = {str(k): str(v) for k, v in dict(last.value.get("where", {})).items()}
    done = {str(op.value["job_id"]) for op in select(history, "execute", "ok")}
    left = {job: place for job, place in sorted(where.items()) if job in done}
    places = sorted({place.split(":", 1)[0] for place in left.values()})
    details = {
        "jobs_in_redis": len(where),
        "finished_but_left": len(left),
        "examples": dict(list(left.items())[:EXAMPLES]),
        "running": running,
    }
    if running:
        return Verdict("final-state", None, f"workers still running: {running}", details)
    if left:
        return Verdict(
            "final-state",
            False,
            f"{len(left)} finished jobs still in Redis after the final stop (in: "
            f"{', '.join(places)}): never acknowledged, they would run again",
            details,
        )
    return Verdict(
        "final-state", True, f"no finished job left in Redis ({len(where)} jobs there)", details
    )


# --- recovery (lock-up) --------------------------------------------------------------------


def check_recovery(history: Sequence[Op], bound: float) -> Verdict:
    """After each heal, a job completes within ``bound`` seconds, else LOCK-UP.

    Only jobs that could run count: if nothing was waiting after the heal, the verdict is unknown.
    The recovery time is from the heal to the first job completion after it.
    """
    windows = [w for w in fault_windows(history) if w.expect_recovery]
    unhealed = [w.fault for w in fault_windows(history) if w.stop is None]
    done_times = sorted(op.time for op in select(history, "execute", "ok"))
    done_at: dict[str, float] = {}
    for op in select(history, "execute", "ok"):
        done_at.setdefault(str(op.value["job_id"]), op.time)
    enqueued_at = {str(op.value["job_id"]): op.time for op in select(history, "enqueue", "ok")}
    times: dict[str, float | None] = {}
    lockups: list[str] = []
    unknown: list[str] = []
    for w in windows:
        if w.stop is None:
            continue
        heal = w.stop
        waiting = [
            job
            for job, t in enqueued_at.items()
            if t <= heal + bound and done_at.get(job, 1e300) > heal
        ]
        first = next((t for t in done_times if t >= heal), None)
        label = f"{w.fault}@{heal:.1f}"
        if first is not None and first - heal <= bound:
            times[label] = round(first - heal, 3)
        elif not waiting:
            times[label] = None
            unknown.append(w.fault)
        else:
            times[label] = None if first is None else round(first - heal, 3)
            lockups.append(w.fault)
    measured = [t for t in times.values() if t is not None]
    details = {
        "bound": bound,
        "recovery_s": times,
        "max_recovery_s": max(measured) if measured else None,
        "lockups": lockups,
        "unhealed": unhealed,
    }
    if lockups:
        seen = {k: v for k, v in times.items() if v is None or v > bound}
        return Verdict(
            "recovery",
            False,
            f"LOCK-UP: no job finished within {bound:.1f} s after healing {', '.join(lockups)} "
            f"(first completion after heal: {seen})",
            details,
        )
    if unhealed:
        return Verdict("recovery", False, f"faults never healed: {unhealed}", details)
    if unknown:
        return Verdict("recovery", None, f"no work waiting after healing {unknown}", details)
    if not measured:
        return Verdict("recovery", True, "no fault to recover from", details)
    return Verdict("recovery", True, f"resumed within {max(measured):.2f} s of each heal", details)


def check_progress(history: Sequence[Op], bound: float) -> Verdict:
    """During a fault that degrades but must not stop work (latency, a frozen peer, a twin, an
    output-buffer limit below a batch), no gap between job completions exceeds ``bound`` while
    jobs wait: a worker that holds jobs and makes no progress on them is locked up too."""
    done_at: dict[str, float] = {}
    for op in select(history, "execute", "ok"):
        done_at.setdefault(str(op.value["job_id"]), op.time)
    done_times = sorted(op.time for op in select(history, "execute", "ok"))
    enqueued = [(op.time, str(op.value["job_id"])) for op in select(history, "enqueue", "ok")]
    gaps: dict[str, float] = {}
    stalls: list[str] = []
    for w in fault_windows(history):
        if not w.progress or w.stop is None:
            continue
        points = [w.start, *(t for t in done_times if w.start < t < w.stop), w.stop]
        worst = 0.0
        for a, b in itertools.pairwise(points):
            waiting = any(t <= b and done_at.get(job, float("inf")) > a for t, job in enqueued)
            if waiting:
                worst = max(worst, b - a)
        gaps[f"{w.fault}@{w.start:.1f}"] = round(worst, 3)
        if worst > bound:
            stalls.append(f"{w.fault} (no job finished for {worst:.1f} s)")
    details = {"bound": bound, "longest_gap_s": gaps}
    if stalls:
        return Verdict(
            "progress",
            False,
            f"STALL: work stopped during {', '.join(stalls)}, bound {bound:.1f} s",
            details,
        )
    if not gaps:
        return Verdict("progress", True, "no fault required progress", details)
    return Verdict(
        "progress",
        True,
        f"work went on during each fault (longest gap {max(gaps.values()):.2f} s)",
        details,
    )


# --- logs ----------------------------------------------------------------------------------

DESCRIPTIVE_PARTS: dict[str, re.Pattern[str]] = {
    "operation": re.compile(r"\bwhile\s+\w+", re.I),
    "endpoint": re.compile(r"\b[\w.\-\[\]]+:\d{2,5}(?:/\d+)?\b"),
    "exception class": re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout|Refused)\b"),
    "attempt": re.compile(r"\battempt\s+\d+", re.I),
    "next wait": re.compile(
        r"\b(?:retrying|retry|next attempt|next try)\s+in\s+[\d.]+\s*m?s\b", re.I
    ),
}
# A line about a Redis failure: each must say what, where and why (a give-up or shutdown line has
# no attempt or next wait; the retry lines checked per outage have all DESCRIPTIVE_PARTS).
EVERY_FAILURE_LINE = ("operation", "endpoint", "exception class")
FAILURE_LINE = re.compile(r"\bunreachable\b|\bconnection (?:lost|closed|refused|reset)\b", re.I)
# The line that says the outage is over: not "recovered N jobs", which is about dead workers.
RECOVERY = re.compile(r"\b(?:reachable again|reconnected)\b", re.I)
BARE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|EOF|Interrupt|Exit|Timeout)(?:\(\))?:?$"
    r"|^end of file reached$"
)
PROBLEM_LEVELS = ("WARNING", "WARN", "ERROR", "CRITICAL")


def missing_parts(message: str, parts: Sequence[str] = tuple(DESCRIPTIVE_PARTS)) -> list[str]:
    """Which of ``parts`` a descriptive outage line ``message`` lacks (empty: descriptive)."""
    return [name for name in parts if not DESCRIPTIVE_PARTS[name].search(message)]


def is_bare(message: str) -> bool:
    """A line that is only an exception name (``EOFError``, ``ConnectionError:``): a bug."""
    return bool(BARE.match(message.strip()))


def check_logs(history: Sequence[Op], bound: float) -> Verdict:
    """Every outage has a descriptive error line, and each worker that logged the outage and
    lived through the heal logs its own recovery line; every warning or error about a Redis
    failure is descriptive; no line is a bare exception name.

    An outage is a fault window marked ``outage``; its lines are those logged from its start to
    ``bound`` seconds after its heal. Descriptive means all of :data:`DESCRIPTIVE_PARTS`. A
    worker that died during the outage owes no recovery line (and another worker's "recovered N
    jobs" line is not one: it is about dead workers, not about Redis being reachable again).
    """
    exited = {op.process: op.time for op in select(history, "worker-exit")}
    logs = [op for op in select(history, "log") if op.value.get("message") is not None]
    bare = [str(op.value["message"]) for op in logs if is_bare(str(op.value["message"]))]
    problem_lines = [op for op in logs if str(op.value.get("level", "")).upper() in PROBLEM_LEVELS]
    findings: list[str] = []
    per_outage: dict[str, dict[str, Any]] = {}
    for w in fault_windows(history):
        if not w.outage:
            continue
        end = (w.stop if w.stop is not None else w.start) + bound
        inside = [op for op in logs if w.start <= op.time <= end]
        errors = [op for op in inside if op in problem_lines and not RECOVERY.search(_msg(op))]
        good = [op for op in errors if not missing_parts(_msg(op))]
        recovered = {op.process for op in inside if RECOVERY.search(_msg(op))}
        heal = w.stop if w.stop is not None else w.start
        owing = sorted(
            {
                op.process
                for op in errors
                if FAILURE_LINE.search(_msg(op)) and exited.get(op.process, float("inf")) > heal
            }
        )
        silent = [p for p in owing if p not in recovered]
        key = f"{w.fault}@{w.start:.1f}"
        per_outage[key] = {
            "error_lines": len(errors),
            "descriptive": len(good),
            "recovered": sorted(recovered),
            "owing_recovery": owing,
        }
        if not errors:
            findings.append(f"{w.fault}: no error line logged during the outage")
        elif not good:
            sample = _msg(errors[0])
            findings.append(
                f"{w.fault}: no descriptive error line (e.g. {sample[:160]!r} lacks "
                f"{', '.join(missing_parts(sample))})"
            )
        if silent:
            findings.append(
                f"{w.fault}: no recovery line within {bound:.0f} s of the heal from "
                f"{', '.join(silent)} (logged the outage, alive at the heal)"
            )
    if bare:
        findings.append(f"{len(bare)} bare exception-name lines, e.g. {bare[0]!r}")
    vague = [
        _msg(op)
        for op in problem_lines
        if FAILURE_LINE.search(_msg(op)) and missing_parts(_msg(op), EVERY_FAILURE_LINE)
    ]
    if vague:
        findings.append(
            f"{len(vague)} Redis failure lines are not descriptive, e.g. {vague[0][:200]!r} "
            f"lacks {', '.join(missing_parts(vague[0], EVERY_FAILURE_LINE))}"
        )
    details = {
        "lines": len(logs),
        "errors_logged": len(problem_lines),
        "outages": per_outage,
        "bare": bare[:EXAMPLES],
        "vague": vague[:EXAMPLES],
    }
    if findings:
        return Verdict("logs", False, "; ".join(findings), details)
    return Verdict(
        "logs",
        True,
        f"{len(per_outage)} outages each logged descriptively and recovered "
        f"({len(problem_lines)} warning/error lines)",
        details,
    )


def _msg(op: Op) -> str:
    return str(op.value.get("message", ""))


# --- spurious outages, watchdog, retry waits ---------------------------------------------


def _worker_logs(history: Sequence[Op]) -> list[Op]:
    return [op for op in select(history, "log") if op.value.get("message") is not None]


def _problem(op: Op) -> bool:
    return str(op.value.get("level", "")).upper() in PROBLEM_LEVELS


def check_spurious_outages(history: Sequence[Op], slack: float) -> Verdict:
    """Outside every outage window (and ``slack`` s after its heal), no worker says Redis is
    unreachable: under latency, low bandwidth or a slicer, such a line means a timeout shorter
    than a reply can legitimately take, and needless reconnects."""
    noisy = [w for w in fault_windows(history) if w.noisy]

    def inside(t: float) -> bool:
        return any(w.start <= t <= (w.stop if w.stop is not None else t) + slack for w in noisy)

    spurious = [
        op
        for op in _worker_logs(history)
        if _problem(op) and FAILURE_LINE.search(_msg(op)) and not inside(op.time)
    ]
    details = {
        "spurious": len(spurious),
        "examples": [f"{op.process} @{op.time:.1f}: {_msg(op)[:200]}" for op in spurious][
            :EXAMPLES
        ],
    }
    if spurious:
        return Verdict(
            "spurious-outages",
            False,
            f"{len(spurious)} outage lines with no outage under way, e.g. "
            f"{_msg(spurious[0])[:200]!r}",
            details,
        )
    return Verdict("spurious-outages", True, "no outage line outside an outage", details)


WATCHDOG = re.compile(r"^watchdog: |interrupted by the watchdog", re.I)


def check_watchdog(history: Sequence[Op], allowed: bool) -> Verdict:
    """With read timeouts on, every stuck call ends by its own timeout: a watchdog reset means
    some timeout is wrong (missing, or shorter than its margin). ``allowed``: read timeouts are
    off in this run, and the watchdog is the mechanism that must recover."""
    resets = [op for op in _worker_logs(history) if WATCHDOG.search(_msg(op))]
    details = {"resets": len(resets), "allowed": allowed}
    if resets and not allowed:
        return Verdict(
            "watchdog",
            False,
            f"{len(resets)} watchdog resets with read timeouts on (a timeout is wrong), e.g. "
            f"{_msg(resets[0])[:200]!r}",
            details,
        )
    what = "expected: read timeouts off" if allowed else "none needed"
    return Verdict("watchdog", True, f"{len(resets)} watchdog resets ({what})", details)


RETRY_WAIT = re.compile(r"\bretrying in ([\d.]+)\s*(ms|s)\b", re.I)
WAIT_ROUNDING = 0.05  # the line prints the wait with one decimal


def check_retry_waits(history: Sequence[Op], cap: float) -> Verdict:
    """Every logged retry wait (``retrying in X s``) is at most the configured ``cap``."""
    waits: list[tuple[float, Op]] = []
    for op in _worker_logs(history):
        for number, unit in RETRY_WAIT.findall(_msg(op)):
            waits.append((float(number) / (1000.0 if unit.lower() == "ms" else 1.0), op))
    over = [(wait, op) for wait, op in waits if wait > cap + WAIT_ROUNDING]
    details = {
        "cap": cap,
        "waits": len(waits),
        "longest": max((w for w, _ in waits), default=None),
        "over": [f"{w:.2f} s: {_msg(op)[:160]}" for w, op in over][:EXAMPLES],
    }
    if over:
        return Verdict(
            "retry-waits",
            False,
            f"{len(over)} retry waits over the {cap:g} s cap (longest {details['longest']:.2f} s)",
            details,
        )
    if not waits:
        return Verdict("retry-waits", True, "no retry wait logged", details)
    return Verdict(
        "retry-waits",
        True,
        f"{len(waits)} retry waits, longest {details['longest']:.2f} s (cap {cap:g} s)",
        details,
    )


# --- who was recovered as dead -------------------------------------------------------------

RECOVERED_JOBS = re.compile(r"\brecovered (\d+) jobs?\b", re.I)
FREEZE_SLACK = 1.0  # a heartbeat written just before the freeze, clocks, the recovery period


def check_recovered_workers(history: Sequence[Op]) -> Verdict:
    """A worker's jobs are recovered only when it really exited, or was frozen past its
    heartbeat TTL: a live worker taken for dead has its jobs run twice.

    A recovery line (``recovered N jobs``) that names worker ids must name only such workers,
    even with N = 0 (a live worker removed from the registry lost its lease: it was taken for
    dead all the same, and the next time it may hold jobs; the heartbeat-TTL mutant once
    survived because its one wrong recovery found the worker idle); a line with N > 0 that
    names none needs at least one such worker before it.
    """
    starts = worker_starts(history)
    ids = {str(op.value.get("worker_id") or p): p for p, op in starts.items()}
    exits = {op.process: op.time for op in select(history, "worker-exit")}
    frozen: dict[str, list[float]] = defaultdict(list)
    for op in select(history, "freeze", "invoke"):
        frozen[str(op.value.get("target"))].append(op.time)

    def dead_by(worker_id: str, t: float, logger: str) -> bool:
        """Could ``worker_id``'s heartbeat have expired by ``t``? Only another process's."""
        candidates = [p for wid, p in ids.items() if wid == worker_id and p != logger]
        for p in candidates:
            if exits.get(p, float("inf")) <= t:
                return True
            value = starts[p].value
            ttl = float(value.get("ttl", 0.0))
            interval = float(value.get("heartbeat_interval", 0.0))
            if any(f + ttl - interval - FREEZE_SLACK <= t for f in frozen.get(p, [])):
                return True
        return False

    lines = [
        (op, int(m.group(1)))
        for op in _worker_logs(history)
        if (m := RECOVERED_JOBS.search(_msg(op)))
    ]
    wrong: list[str] = []
    for op, moved in lines:
        own = str(starts[op.process].value.get("worker_id")) if op.process in starts else None
        named = [
            wid
            for wid in ids
            if wid != own and re.search(rf"(?<![\w-]){re.escape(wid)}(?![\w-])", _msg(op))
        ]
        if named:
            alive = [wid for wid in named if not dead_by(wid, op.time, op.process)]
            if alive:
                wrong.append(f"{op.process} recovered live worker(s) {alive}: {_msg(op)[:160]}")
        elif moved > 0 and not any(dead_by(wid, op.time, op.process) for wid in ids):
            wrong.append(f"{op.process} recovered jobs with no worker dead: {_msg(op)[:160]}")
    details = {"recovery_lines": len(lines), "wrong": wrong[:EXAMPLES]}
    if wrong:
        return Verdict(
            "recovered-workers",
            False,
            f"{len(wrong)} recoveries of workers that were alive: {wrong[0]}",
            details,
        )
    return Verdict(
        "recovered-workers",
        True,
        f"{len(lines)} recovery lines, each after a real death or a freeze past the TTL",
        details,
    )


# --- zombies: a worker presumed dead must say so ------------------------------------------

PRESUMED_DEAD = re.compile(r"\bpresumed dead\b", re.I)


def check_zombies(history: Sequence[Op]) -> Verdict:
    """A frozen worker whose jobs another worker recovered meanwhile (it was presumed dead)
    must say so once it resumes: a WARNING that it was presumed dead. Otherwise it goes on
    silently, acking jobs it no longer owns, with their duplicates unexplained."""
    starts = worker_starts(history)
    logs = _worker_logs(history)
    frozen: dict[str, float] = {}
    findings: list[str] = []
    rows: list[dict[str, Any]] = []
    for op in select(history, "freeze"):
        target = str(op.value.get("target"))
        if op.type == "invoke":
            frozen[target] = op.time
            continue
        began = frozen.pop(target, None)
        if began is None or target not in starts:
            continue
        wid = str(starts[target].value.get("worker_id") or target)
        recovered = [
            line
            for line in logs
            if line.process != target
            and began <= line.time <= op.time
            and (m := RECOVERED_JOBS.search(_msg(line)))
            and int(m.group(1)) > 0
        ]
        said = [
            line
            for line in logs
            if line.process == target and line.time >= op.time and PRESUMED_DEAD.search(_msg(line))
        ]
        rows.append({"worker": wid, "recovered_lines": len(recovered), "said": len(said)})
        if recovered and not said:
            findings.append(
                f"{target} ({wid}) had its jobs recovered while frozen and never logged that it "
                "was presumed dead after resuming"
            )
    if findings:
        return Verdict("zombies", False, "; ".join(findings), {"freezes": rows})
    if not rows:
        return Verdict("zombies", True, "no worker was frozen", {"freezes": rows})
    return Verdict(
        "zombies",
        True,
        f"{len(rows)} freezes, each presumed-dead worker said so",
        {"freezes": rows},
    )


# --- memory --------------------------------------------------------------------------------


def check_rss(history: Sequence[Op], limit_bytes: int) -> Verdict:
    """Each worker's resident memory stays under ``limit_bytes``."""
    per_process: dict[str, list[int]] = defaultdict(list)
    for op in select(history, "rss"):
        per_process[op.process].append(int(op.value["rss"]))
    if not per_process:
        return Verdict("rss", None, "no memory samples", {})
    peaks = {proc: max(samples) for proc, samples in per_process.items()}
    growth = {proc: samples[-1] - samples[0] for proc, samples in per_process.items()}
    details = {"limit": limit_bytes, "peak": peaks, "growth": growth}
    over = {proc: peak for proc, peak in peaks.items() if peak > limit_bytes}
    mib = 1024 * 1024
    if over:
        text = ", ".join(f"{p} {v / mib:.0f} MiB" for p, v in over.items())
        return Verdict("rss", False, f"RSS over {limit_bytes / mib:.0f} MiB: {text}", details)
    top = max(peaks.values())
    return Verdict("rss", True, f"peak RSS {top / mib:.0f} MiB", details)


# --- exits ---------------------------------------------------------------------------------


def check_exits(history: Sequence[Op]) -> Verdict:
    """After each signal, the worker exits with an expected code within the allowed time;
    and no worker exits without having been signalled (or told to expect it: an
    ``expect-exit`` operation, e.g. a twin that must be refused with exit 2).
    """
    findings: list[str] = []
    exits = list(select(history, "worker-exit"))
    signals = [op for op in history if op.f in ("signal", "expect-exit")]
    rows: list[dict[str, Any]] = []
    explained: set[int] = set()
    for sig in signals:
        target = str(sig.value["target"])
        what = str(sig.value.get("signal", sig.value.get("why", "being told to")))
        following = [
            (i, op) for i, op in enumerate(exits) if op.process == target and op.time >= sig.time
        ]
        if not following:
            findings.append(f"{target} did not exit after {what}")
            rows.append({"target": target, "signal": what, "code": None})
            continue
        i, ex = following[0]
        explained.add(i)
        took = ex.time - sig.time
        code = ex.value.get("code")
        expect = list(sig.value.get("expect_codes", [0]))
        within = float(sig.value.get("within", 10.0))
        rows.append({"target": target, "signal": what, "code": code, "took": took})
        if code not in expect:
            findings.append(f"{target} exited {code} after {what} (expected {expect})")
        if took > within:
            findings.append(
                f"{target} took {took:.1f} s to exit after {what} (allowed {within:.1f} s)"
            )
    for i, ex in enumerate(exits):
        if i not in explained:
            findings.append(f"{ex.process} exited by itself with code {ex.value.get('code')}")
    details = {"signals": rows}
    if findings:
        return Verdict("exits", False, "; ".join(findings), details)
    if not signals:
        return Verdict("exits", None, "no worker was signalled", details)
    worst = max((r.get("took", 0.0) for r in rows), default=0.0)
    return Verdict(
        "exits", True, f"{len(rows)} signals obeyed (slowest exit {worst:.2f} s)", details
    )


# --- job timeouts --------------------------------------------------------------------------


def check_timeouts(history: Sequence[Op]) -> Verdict:
    """Jobs meant to outlive their timeout (``expect-timeout`` ops) were cut off and retried.

    The first execution must not finish before a second one starts (the timeout fired, the job
    was not left running to completion) and some later execution must finish (it was retried).
    """
    expected = {str(op.value["job_id"]): op for op in select(history, "expect-timeout")}
    if not expected:
        return Verdict("timeouts", True, "no job was meant to time out", {})
    findings: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    for job, rule in expected.items():
        starts = sorted(
            op.time for op in select(history, "execute", "invoke") if op.value["job_id"] == job
        )
        oks = sorted(
            op.time for op in select(history, "execute", "ok") if op.value["job_id"] == job
        )
        rows[job] = {"starts": len(starts), "finished": len(oks)}
        timeout = float(rule.value.get("timeout", 0.0))
        if not starts:
            findings.append(f"{job} never started")
        elif oks and oks[0] < (starts[1] if len(starts) > 1 else float("inf")):
            took = oks[0] - starts[0]
            findings.append(
                f"{job} ran to completion in {took:.1f} s despite its {timeout:.0f} s timeout"
            )
        elif not oks:
            findings.append(f"{job} timed out but was never completed by a retry")
    if findings:
        return Verdict("timeouts", False, "; ".join(findings), {"jobs": rows})
    return Verdict(
        "timeouts", True, f"{len(expected)} jobs timed out and were retried", {"jobs": rows}
    )


# --- what a worker holds -------------------------------------------------------------------


def window_of(history: Sequence[Op], worker_id: str) -> int | None:
    """The window (concurrency + prefetch, the ``window`` fact of its ``worker-start``) of the
    worker that fetches as ``worker_id``: its own start, or its supervisor's for a supervised
    child (``SUPERVISOR_ID-INDEX``); None when no start names it."""
    windows: dict[str, int] = {
        str(op.value.get("worker_id")): int(op.value["window"])
        for op in select(history, "worker-start")
        if op.value.get("window") is not None
    }
    if worker_id in windows:
        return windows[worker_id]
    parents = [w for w in windows if worker_id.startswith(w + "-")]
    return windows[max(parents, key=len)] if parents else None


def check_holding(history: Sequence[Op], slack: float) -> Verdict:
    """What one worker holds never exceeds its window, concurrency + prefetch.

    The runner samples each worker's processing lists (LLEN, read from Redis directly:
    ``holding`` operations, ``lists`` = worker id -> jobs). worker/window.py makes running +
    buffered + finished-but-unacked jobs all count inside the window, and the fetch asks for the
    free slots only, so a worker's lists hold at most ``window`` jobs (per process running under
    that id: twins share their lists). What the bound does not promise is not judged as such:

    - during an ambiguous fault and ``slack`` s after its heal, a fetch whose reply was lost has
      moved up to one more batch (at most a window) into the lists without the worker knowing;
      it adopts them on its next fetch, before taking more: the bound there is two windows;
    - during a fault in which Redis may undo acknowledged writes (a failover) and ``slack`` s
      after it, nothing is judged: acks the old primary took may be missing on the new one, so
      the lists hold again jobs the worker had finished (it adopts and reruns them);
    - a dead or frozen worker's lists only shrink (recovery moves them back to their queue);
    - lists of a worker id no ``worker-start`` names are reported, not judged.
    """
    samples = list(select(history, "holding", "ok"))
    if not samples:
        return Verdict("holding", None, "no sample of the processing lists was recorded", {})
    windows = [w for w in fault_windows(history) if w.ambiguous]
    rollbacks = [w for w in fault_windows(history) if w.rolls_back]
    starts = list(select(history, "worker-start"))
    end = max((op.time for op in history), default=0.0)
    over: list[str] = []
    peaks: dict[str, int] = {}
    unjudged: set[str] = set()
    for op in samples:
        if any(w.start <= op.time <= (w.stop or end) + slack for w in rollbacks):
            continue
        lost_batch = any(w.start <= op.time <= (w.stop or end) + slack for w in windows)
        for worker_id, held in dict(op.value.get("lists", {})).items():
            held = int(held)
            peaks[worker_id] = max(held, peaks.get(worker_id, 0))
            window = window_of(history, worker_id)
            if window is None:
                unjudged.add(worker_id)
                continue
            twins = sum(
                1 for s in starts if s.value.get("worker_id") == worker_id and s.time <= op.time
            )
            bound = window * max(1, twins) * (2 if lost_batch else 1)
            if held > bound:
                over.append(f"{worker_id} held {held} > {bound} at {op.time:.2f}")
    details = {
        "samples": len(samples),
        "peaks": peaks,
        "over": len(over),
        "examples": over[:EXAMPLES],
        "unjudged": sorted(unjudged),
    }
    if over:
        return Verdict(
            "holding",
            False,
            f"{len(over)} samples of a worker holding more than its window "
            f"(concurrency + prefetch): {over[0]}",
            details,
        )
    return Verdict(
        "holding", True, f"every worker within its window ({len(samples)} samples)", details
    )


# --- priority order ------------------------------------------------------------------------


def check_priority(history: Sequence[Op]) -> Verdict:
    """A lower-priority queue's job is not fetched while a higher queue held a job waiting.

    Priority is the order of ``queues`` in the ``worker-start``; each job's queue is in its
    ``enqueue`` invoke, its arrival the enqueue's ``ok``, its start its first ``execute``
    invoke. The fetch time is not recorded, so it is bounded from the starts: a worker runs its
    jobs in fetch order and holds at most ``window`` of them, so a job J started after at most
    ``window - 1`` others of the same worker process since it was fetched; J's fetch is no
    earlier than the start ``window`` places before it. A higher job K enqueued before that
    start and first started after J was overtaken: it was waiting in its queue when J was
    fetched, and the fetch walks the queues highest first. Legitimately overtaken (K not in its
    queue then): K held by another worker that died or froze before starting it, or moved by a
    fetch whose reply was lost: at most two windows per worker process in the run; overtaken
    jobs beyond that are the violation.
    """
    starts = list(select(history, "worker-start"))
    queues = next((list(op.value["queues"]) for op in starts if op.value.get("queues")), [])
    if len(queues) < 2:
        return Verdict("priority", True, "one queue: no order to judge", {})
    rank = {name: i for i, name in enumerate(queues)}
    queue_of = {
        str(op.value["job_id"]): str(op.value.get("queue"))
        for op in select(history, "enqueue", "invoke")
    }
    arrived = {str(op.value["job_id"]): op.time for op in select(history, "enqueue", "ok")}
    first: dict[str, float] = {}
    by_process: dict[tuple[str, Any], list[tuple[float, str]]] = defaultdict(list)
    for op in select(history, "execute", "invoke"):
        job = str(op.value["job_id"])
        if job not in first:
            first[job] = op.time
        by_process[(op.process, op.value.get("pid"))].append((op.time, job))
    waiting: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for job, t in arrived.items():
        if queue_of.get(job) in rank:
            waiting[rank[queue_of[job]]].append((t, job))
    for jobs in waiting.values():
        jobs.sort()
    overtaken: dict[str, str] = {}
    widest = 1
    for (process, _pid), runs in by_process.items():
        window = window_of(history, process)
        if window is None:  # no start names it: its fetch time cannot be bounded
            continue
        widest = max(widest, window)
        runs.sort()
        for i in range(window, len(runs)):
            fetched_after, (started, job) = runs[i - window][0], runs[i]
            mine = rank.get(queue_of.get(job, ""))
            for higher in range(mine or 0):
                for t, other in waiting[higher]:
                    if t >= fetched_after:
                        break
                    if first.get(other, float("inf")) > started and other not in overtaken:
                        overtaken[other] = f"{other} ({queues[higher]}) waited while {job} ran"
    slack = 2 * widest * max(1, len(starts), len(by_process))
    details = {
        "queues": queues,
        "overtaken": len(overtaken),
        "slack": slack,
        "examples": sorted(overtaken.values())[:EXAMPLES],
    }
    if len(overtaken) > slack:
        return Verdict(
            "priority",
            False,
            f"{len(overtaken)} higher-priority jobs waited while lower ones were fetched "
            f"(at most {slack} can be held elsewhere)",
            details,
        )
    return Verdict(
        "priority", True, f"{len(overtaken)} overtaken jobs, within the slack of {slack}", details
    )


# --- all of them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The bounds a run is judged against (derived from the worker's settings)."""

    recovery_bound: float = 8.0
    rss_limit_bytes: int = 128 * 1024 * 1024
    retry_cap: float = 5.0
    watchdog_allowed: bool = False
    """Read timeouts are off: the watchdog is the mechanism, its resets are expected."""


def check_all(history: Sequence[Op], limits: Limits) -> list[Verdict]:
    checkers: list[tuple[str, Checker]] = [
        ("lost", check_lost),
        ("failover-loss", check_failover_loss),
        ("duplicates", check_duplicates),
        ("final-state", check_final_state),
        ("recovery", lambda h: check_recovery(h, limits.recovery_bound)),
        ("progress", lambda h: check_progress(h, limits.recovery_bound)),
        ("logs", lambda h: check_logs(h, limits.recovery_bound)),
        ("spurious-outages", lambda h: check_spurious_outages(h, limits.recovery_bound)),
        ("watchdog", lambda h: check_watchdog(h, limits.watchdog_allowed)),
        ("retry-waits", lambda h: check_retry_waits(h, limits.retry_cap)),
        ("recovered-workers", check_recovered_workers),
        ("zombies", check_zombies),
        ("rss", lambda h: check_rss(h, limits.rss_limit_bytes)),
        ("exits", check_exits),
        ("timeouts", check_timeouts),
        ("holding", lambda h: check_holding(h, limits.recovery_bound)),
        ("priority", check_priority),
    ]
    return [guarded(name, checker, history) for name, checker in checkers]
