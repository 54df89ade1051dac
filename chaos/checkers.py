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

from chaos.history import Op, select

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
    lost = sorted(acked - done - dead)
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
    return Verdict("lost", True, f"all {len(acked)} acknowledged jobs executed", details)


# --- duplicates ----------------------------------------------------------------------------

AMBIGUITY_SLACK = 5.0  # an ack lost at a window's end may be redelivered a little later


def check_duplicates(history: Sequence[Op]) -> Verdict:
    """Jobs that finished more than once; allowed only where at-least-once allows them.

    A second completion is *licensed* when, between the first completion and the second start,
    a worker exited (its unacknowledged jobs are redelivered) or an ambiguous fault was active
    (a reply may have been lost, e.g. the ack's). Anything else is an unlicensed duplicate.
    """
    starts: dict[str, list[float]] = defaultdict(list)
    finishes: dict[str, list[float]] = defaultdict(list)
    for op in select(history, "execute"):
        job = str(op.value["job_id"])
        if op.type == "invoke":
            starts[job].append(op.time)
        elif op.type == "ok":
            finishes[job].append(op.time)
    deaths = [op.time for op in select(history, "worker-exit")]
    windows = [w for w in fault_windows(history) if w.ambiguous]

    def licensed(first_done: float, second_start: float) -> bool:
        if any(first_done <= t <= second_start for t in deaths):
            return True
        return any(
            w.start <= second_start and first_done <= (w.stop or second_start) + AMBIGUITY_SLACK
            for w in windows
        )

    duplicated: list[str] = []
    unlicensed: list[str] = []
    for job, done in finishes.items():
        if len(done) < 2:
            continue
        duplicated.append(job)
        done = sorted(done)
        later_starts = sorted(starts.get(job, done))
        for first, second in itertools.pairwise(done):
            second_start = max((s for s in later_starts if s <= second), default=second)
            if not licensed(first, second_start):
                unlicensed.append(job)
                break
    details = {
        "duplicated": len(duplicated),
        "licensed": len(duplicated) - len(unlicensed),
        "unlicensed": len(unlicensed),
        "examples": sorted(unlicensed or duplicated)[:EXAMPLES],
    }
    if unlicensed:
        return Verdict(
            "duplicates",
            False,
            f"{len(unlicensed)} jobs ran twice with no worker death or ambiguous fault between",
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
RECOVERY = re.compile(r"\b(?:reachable again|reconnected|recovered)\b", re.I)
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
    """Every outage has a descriptive error line and a recovery line; every warning or error
    about a Redis failure is descriptive; no line is a bare exception name.

    An outage is a fault window marked ``outage``; its lines are those logged from its start to
    ``bound`` seconds after its heal. Descriptive means all of :data:`DESCRIPTIVE_PARTS`.
    """
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
        recovered = [op for op in inside if RECOVERY.search(_msg(op))]
        key = f"{w.fault}@{w.start:.1f}"
        per_outage[key] = {
            "error_lines": len(errors),
            "descriptive": len(good),
            "recovery_lines": len(recovered),
        }
        if not errors:
            findings.append(f"{w.fault}: no error line logged during the outage")
        elif not good:
            sample = _msg(errors[0])
            findings.append(
                f"{w.fault}: no descriptive error line (e.g. {sample[:160]!r} lacks "
                f"{', '.join(missing_parts(sample))})"
            )
        if not recovered:
            findings.append(f"{w.fault}: no recovery line within {bound:.0f} s of the heal")
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
    and no worker exits without having been signalled.
    """
    findings: list[str] = []
    exits = list(select(history, "worker-exit"))
    signals = list(select(history, "signal"))
    rows: list[dict[str, Any]] = []
    explained: set[int] = set()
    for sig in signals:
        target = str(sig.value["target"])
        following = [
            (i, op) for i, op in enumerate(exits) if op.process == target and op.time >= sig.time
        ]
        if not following:
            findings.append(f"{target} did not exit after {sig.value['signal']}")
            rows.append({"target": target, "signal": sig.value["signal"], "code": None})
            continue
        i, ex = following[0]
        explained.add(i)
        took = ex.time - sig.time
        code = ex.value.get("code")
        expect = list(sig.value.get("expect_codes", [0]))
        within = float(sig.value.get("within", 10.0))
        rows.append({"target": target, "signal": sig.value["signal"], "code": code, "took": took})
        if code not in expect:
            findings.append(
                f"{target} exited {code} after {sig.value['signal']} (expected {expect})"
            )
        if took > within:
            findings.append(
                f"{target} took {took:.1f} s to exit after {sig.value['signal']} "
                f"(allowed {within:.1f} s)"
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


# --- all of them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The bounds a run is judged against."""

    recovery_bound: float = 8.0
    rss_limit_bytes: int = 128 * 1024 * 1024


def check_all(history: Sequence[Op], limits: Limits) -> list[Verdict]:
    checkers: list[tuple[str, Checker]] = [
        ("lost", check_lost),
        ("duplicates", check_duplicates),
        ("recovery", lambda h: check_recovery(h, limits.recovery_bound)),
        ("logs", lambda h: check_logs(h, limits.recovery_bound)),
        ("rss", lambda h: check_rss(h, limits.rss_limit_bytes)),
        ("exits", check_exits),
        ("timeouts", check_timeouts),
    ]
    return [guarded(name, checker, history) for name, checker in checkers]
