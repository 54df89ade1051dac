"""The checkers on hand-made histories: no Redis, no process, no clock.

Each checker is shown passing on a good history and failing on a bad one, so a checker that can
never fail would be caught here.
"""

from __future__ import annotations

from typing import Any

from chaos.checkers import (
    Limits,
    Verdict,
    check_all,
    check_duplicates,
    check_exits,
    check_logs,
    check_lost,
    check_recovery,
    check_rss,
    check_timeouts,
    combine,
    guarded,
    is_bare,
    missing_parts,
)
from chaos.history import History, Op, OpType, read_jsonl

GOOD_LINE = (
    "Redis 127.0.0.1:6379/0 unreachable while fetching from queues [default]: "
    "ConnectionResetError [Errno 104] Connection reset by peer (attempt 3, down 2.4 s, "
    "retrying in 0.8 s)"
)
RECOVERY_LINE = "Redis 127.0.0.1:6379/0 reachable again after 5.1 s (7 attempts)"


class H:
    """A tiny history builder: ``H().enq("a", 1).run("a", 2)...ops``."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, t: float, process: str, f: str, type: OpType, **value: Any) -> H:
        self.ops.append(Op(t, process, f, type, value))
        return self

    def enq(self, job: str, t: float, outcome: OpType = "ok") -> H:
        return self.op(t, "producer", "enqueue", "invoke", job_id=job).op(
            t + 0.01, "producer", "enqueue", outcome, job_id=job
        )

    def run(self, job: str, t: float, worker: str = "w1", finish: bool = True) -> H:
        self.op(t, worker, "execute", "invoke", job_id=job)
        return self.op(t + 0.05, worker, "execute", "ok", job_id=job) if finish else self

    def fault(self, name: str, start: float, stop: float | None, **flags: Any) -> H:
        self.op(start, "nemesis", "fault-start", "ok", fault=name, did="x", **flags)
        if stop is not None:
            self.op(stop, "nemesis", "fault-stop", "ok", fault=name, did="healed")
        return self

    def log(self, t: float, message: str, level: str = "WARNING") -> H:
        return self.op(t, "worker-1", "log", "ok", level=level, message=message)

    def sorted(self) -> list[Op]:
        return sorted(self.ops, key=lambda op: op.time)


# --- lost ----------------------------------------------------------------------------------


def test_lost_valid_when_every_acknowledged_job_ran() -> None:
    v = check_lost(H().enq("a", 1).enq("b", 2).run("a", 3).run("b", 4).sorted())
    assert v.valid is True
    assert v.details["executed"] == 2


def test_lost_reports_the_lost_jobs_and_where_they_are() -> None:
    h = H().enq("a", 1).enq("b", 2).run("a", 3)
    h.op(9, "runner", "inspect", "ok", where={"b": "processing"})
    v = check_lost(h.sorted())
    assert v.valid is False
    assert v.details["lost_ids"] == ["b"]
    assert v.details["lost_where"] == {"b": "processing"}
    assert "1 of 2 jobs LOST" in v.summary and "processing" in v.summary


def test_lost_does_not_require_unknown_enqueues_but_counts_them_recovered() -> None:
    h = H().enq("a", 1).enq("b", 2, outcome="info").enq("c", 3, outcome="info").run("a", 4)
    v = check_lost(h.run("b", 5).sorted())
    assert v.valid is True
    assert v.details["unknown"] == 2 and v.details["recovered"] == 1


def test_lost_flags_a_job_that_was_never_enqueued() -> None:
    v = check_lost(H().enq("a", 1).run("a", 2).run("ghost", 3).sorted())
    assert v.valid is False and v.details["unexpected"] == ["ghost"]


def test_lost_dead_lettered_is_reported_apart() -> None:
    h = H().enq("a", 1).op(5, "runner", "inspect", "ok", where={"a": "dead"})
    v = check_lost(h.sorted())
    assert v.valid is False and v.details["lost"] == 0 and v.details["dead_lettered"] == ["a"]


def test_lost_is_unknown_without_any_acknowledged_enqueue() -> None:
    assert check_lost(H().enq("a", 1, outcome="fail").sorted()).valid is None


def test_a_started_but_unfinished_execution_does_not_count() -> None:
    v = check_lost(H().enq("a", 1).run("a", 2, finish=False).sorted())
    assert v.valid is False


# --- duplicates ----------------------------------------------------------------------------


def test_duplicate_without_license_is_invalid() -> None:
    v = check_duplicates(H().enq("a", 1).run("a", 2).run("a", 10).sorted())
    assert v.valid is False and v.details["unlicensed"] == 1


def test_duplicate_after_worker_death_is_licensed() -> None:
    h = H().enq("a", 1).run("a", 2).op(3, "worker-1", "worker-exit", "info", code=-9)
    v = check_duplicates(h.run("a", 10, worker="w2").sorted())
    assert v.valid is True and v.details["licensed"] == 1


def test_duplicate_after_ambiguous_fault_is_licensed_but_not_after_a_clean_one() -> None:
    base = H().enq("a", 1).run("a", 2).run("a", 6)
    ambiguous = base.fault("cut", 2.5, 4, ambiguous=True).sorted()
    assert check_duplicates(ambiguous).valid is True
    clean = H().enq("a", 1).run("a", 2).run("a", 6).fault("latency", 2.5, 4, ambiguous=False)
    assert check_duplicates(clean.sorted()).valid is False


def test_a_fault_long_before_the_duplicate_does_not_license_it() -> None:
    h = H().fault("cut", 0, 0.5, ambiguous=True).enq("a", 20).run("a", 21).run("a", 40)
    assert check_duplicates(h.sorted()).valid is False


def test_retry_after_a_timeout_is_not_a_duplicate() -> None:
    h = H().enq("a", 1).run("a", 2, finish=False).run("a", 8)
    assert check_duplicates(h.sorted()).summary == "no job ran twice"


# --- recovery ------------------------------------------------------------------------------


def _steady(h: H, start: float, stop: float, *, ran_until: float) -> H:
    """A job enqueued every second from ``start`` to ``stop``; those before ``ran_until`` ran."""
    t = start
    while t < stop:
        job = f"j{t:.0f}"
        h.enq(job, t)
        if t < ran_until:
            h.run(job, t + 0.1)
        t += 1.0
    return h


def test_recovery_measures_time_from_heal_to_first_completion() -> None:
    h = _steady(H(), 0, 20, ran_until=5).fault("cut", 5, 10, outage=True)
    h.run("j5", 11.5).run("j6", 11.6)
    v = check_recovery(h.sorted(), bound=4)
    assert v.valid is True
    assert v.details["recovery_s"] == {"cut@10.0": 1.55}


def test_no_completion_after_heal_is_a_lockup() -> None:
    h = _steady(H(), 0, 20, ran_until=5).fault("blackhole", 5, 10, outage=True)
    v = check_recovery(h.sorted(), bound=4)
    assert v.valid is False
    assert v.summary.startswith("LOCK-UP") and v.details["lockups"] == ["blackhole"]


def test_a_late_completion_beyond_the_bound_is_a_lockup() -> None:
    h = _steady(H(), 0, 20, ran_until=5).fault("cut", 5, 10).run("j5", 17)
    v = check_recovery(h.sorted(), bound=4)
    assert v.valid is False and v.details["recovery_s"] == {"cut@10.0": 7.05}


def test_recovery_is_unknown_when_nothing_waited_after_the_heal() -> None:
    h = H().enq("a", 1).run("a", 2).fault("cut", 3, 5)
    assert check_recovery(h.sorted(), bound=4).valid is None


def test_an_unhealed_fault_is_invalid() -> None:
    h = _steady(H(), 0, 5, ran_until=5).fault("cut", 3, None)
    v = check_recovery(h.sorted(), bound=4)
    assert v.valid is False and v.details["unhealed"] == ["cut"]


# --- logs ----------------------------------------------------------------------------------


def test_the_contract_line_is_descriptive() -> None:
    assert missing_parts(GOOD_LINE) == []
    assert set(missing_parts("Redis unreachable: ConnectionError")) == {
        "operation",
        "endpoint",
        "attempt",
        "next wait",
    }


def test_bare_exception_names() -> None:
    for bare in ("EOFError", "ConnectionError:", "redis.exceptions.TimeoutError", "EOFError()"):
        assert is_bare(bare), bare
    for fine in (GOOD_LINE, "worker started", "Error while fetching: TimeoutError (attempt 1)"):
        assert not is_bare(fine), fine


def test_logs_valid_with_descriptive_error_and_recovery() -> None:
    h = H().fault("cut", 10, 15, outage=True).log(11, GOOD_LINE).log(16, RECOVERY_LINE, "INFO")
    v = check_logs(h.sorted(), bound=5)
    assert v.valid is True, v.summary
    assert v.details["errors_logged"] == 1


def test_logs_invalid_when_the_outage_line_is_not_descriptive() -> None:
    h = H().fault("cut", 10, 15, outage=True).log(11, "ERROR fetch failed: EOFError")
    v = check_logs(h.log(16, RECOVERY_LINE, "INFO").sorted(), bound=5)
    assert v.valid is False and "no descriptive error line" in v.summary


def test_logs_invalid_without_a_recovery_line_or_with_a_silent_outage() -> None:
    no_recovery = H().fault("cut", 10, 15, outage=True).log(11, GOOD_LINE)
    assert "no recovery line" in check_logs(no_recovery.sorted(), bound=5).summary
    silent = H().fault("cut", 10, 15, outage=True)
    assert "no error line" in check_logs(silent.sorted(), bound=5).summary


def test_logs_invalid_with_a_bare_exception_line_anywhere() -> None:
    h = H().log(3, "EOFError", "ERROR")
    v = check_logs(h.sorted(), bound=5)
    assert v.valid is False and v.details["bare"] == ["EOFError"]


def test_faults_that_are_not_outages_need_no_error_line() -> None:
    assert check_logs(H().fault("latency", 1, 5, outage=False).sorted(), bound=5).valid is True


# --- rss -----------------------------------------------------------------------------------


def test_rss_within_and_over_the_limit() -> None:
    h = H().op(1, "worker-1", "rss", "ok", rss=50_000_000).op(2, "worker-1", "rss", "ok", rss=60)
    assert check_rss(h.sorted(), limit_bytes=100_000_000).valid is True
    h.op(3, "worker-1", "rss", "ok", rss=300_000_000)
    v = check_rss(h.sorted(), limit_bytes=100_000_000)
    assert v.valid is False and "worker-1" in v.summary
    assert check_rss([], limit_bytes=1).valid is None


# --- exits ---------------------------------------------------------------------------------


def _signal(h: H, t: float, sig: str = "SIGTERM", codes: tuple[int, ...] = (0,)) -> H:
    return h.op(
        t, "nemesis", "signal", "ok", target="worker-1", signal=sig, expect_codes=codes, within=5
    )


def test_exit_after_sigterm_with_code_zero_in_time() -> None:
    h = _signal(H(), 10).op(11.2, "worker-1", "worker-exit", "ok", code=0)
    v = check_exits(h.sorted())
    assert v.valid is True and v.details["signals"][0]["code"] == 0


def test_exit_too_slow_wrong_code_or_never() -> None:
    slow = _signal(H(), 10).op(16, "worker-1", "worker-exit", "ok", code=0)
    assert "took 6.0 s" in check_exits(slow.sorted()).summary
    wrong = _signal(H(), 10).op(11, "worker-1", "worker-exit", "ok", code=1)
    assert "exited 1" in check_exits(wrong.sorted()).summary
    never = _signal(H(), 10)
    assert "did not exit" in check_exits(never.sorted()).summary


def test_a_worker_that_exits_unsignalled_is_invalid() -> None:
    h = H().op(5, "worker-1", "worker-exit", "info", code=1)
    v = check_exits(h.sorted())
    assert v.valid is False and "by itself" in v.summary


def test_sigkill_expects_minus_nine() -> None:
    h = _signal(H(), 1, "SIGKILL", (-9,)).op(1.1, "worker-1", "worker-exit", "info", code=-9)
    assert check_exits(h.sorted()).valid is True


# --- composition ---------------------------------------------------------------------------


def test_a_crashing_checker_is_unknown_not_a_pass() -> None:
    def broken(history: list[Op]) -> Verdict:
        raise KeyError("job_id")

    v = guarded("broken", broken, [])
    assert v.valid is None and "KeyError" in v.summary


def test_combine_false_beats_unknown_beats_true() -> None:
    t, u, f = (Verdict("x", val, "") for val in (True, None, False))
    assert combine([t, t]) is True
    assert combine([t, u]) is None
    assert combine([u, f, t]) is False


def test_check_all_on_a_malformed_history_gives_unknowns_not_crashes() -> None:
    malformed = [Op(1, "producer", "enqueue", "ok", {}), Op(2, "w", "execute", "ok", {})]
    verdicts = check_all(malformed, Limits())
    assert {v.checker for v in verdicts if v.valid is None} >= {"lost", "duplicates"}


def test_history_round_trips_through_jsonl(tmp_path: Any) -> None:
    h = History(clock=iter([3.0, 1.0, 2.0]).__next__)
    h.record("producer", "enqueue", "invoke", job_id="a")
    h.record("producer", "enqueue", "ok", job_id="a")
    h.record("nemesis", "fault-start", "ok", fault="cut")
    path = tmp_path / "h.jsonl"
    h.write_jsonl(path)
    assert [op.time for op in read_jsonl(path)] == [1.0, 2.0, 3.0]
    assert read_jsonl(path) == h.ops()


# --- timeouts ------------------------------------------------------------------------------


def _expect_timeout(h: H) -> H:
    return h.op(0.5, "nemesis", "expect-timeout", "ok", job_id="slow", timeout=2.0)


def test_a_timed_out_then_retried_job_is_valid() -> None:
    h = _expect_timeout(H().enq("slow", 1).run("slow", 2, finish=False).run("slow", 6))
    v = check_timeouts(h.sorted())
    assert v.valid is True and v.details["jobs"]["slow"] == {"starts": 2, "finished": 1}


def test_a_job_that_ignored_its_timeout_is_invalid() -> None:
    h = _expect_timeout(H().enq("slow", 1)).op(2, "w1", "execute", "invoke", job_id="slow")
    h.op(10, "w1", "execute", "ok", job_id="slow")
    v = check_timeouts(h.sorted())
    assert v.valid is False and "despite its 2 s timeout" in v.summary


def test_a_timed_out_job_never_retried_is_invalid() -> None:
    h = _expect_timeout(H().enq("slow", 1).run("slow", 2, finish=False))
    assert "never completed" in check_timeouts(h.sorted()).summary
    assert check_timeouts(H().sorted()).valid is True


def test_every_redis_failure_line_must_be_descriptive_not_just_one() -> None:
    h = H().fault("cut", 10, 15, outage=True).log(11, GOOD_LINE).log(16, RECOVERY_LINE, "INFO")
    h.log(12, "Redis unreachable, retrying", "ERROR")
    v = check_logs(h.sorted(), bound=5)
    assert v.valid is False and v.details["vague"] == ["Redis unreachable, retrying"]
