"""The checkers on hand-made histories: no Redis, no process, no clock.

Each checker is shown passing on a good history and failing on a bad one, so a checker that can
never fail would be caught here.
"""

from __future__ import annotations

from typing import Any

from steadfetch.chaos.checkers import (
    Limits,
    Verdict,
    check_all,
    check_duplicates,
    check_exits,
    check_final_state,
    check_holding,
    check_logs,
    check_lost,
    check_priority,
    check_progress,
    check_recovered_workers,
    check_recovery,
    check_retry_waits,
    check_rss,
    check_spurious_outages,
    check_timeouts,
    check_watchdog,
    check_zombies,
    combine,
    guarded,
    is_bare,
    missing_parts,
)
from steadfetch.chaos.history import History, Op, OpType, read_jsonl

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

    def log(self, t: float, message: str, level: str = "WARNING", process: str = "worker-1") -> H:
        return self.op(t, process, "log", "ok", level=level, message=message)

    def start(self, t: float, process: str, worker_id: str, holds: int = 8, **value: Any) -> H:
        return self.op(t, process, "worker-start", "ok", worker_id=worker_id, holds=holds, **value)

    def exit(self, t: float, process: str, code: int) -> H:
        return self.op(t, process, "worker-exit", "ok" if code == 0 else "info", code=code)

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
    h = H().start(0, "worker-1", "w1").enq("a", 1).run("a", 2).exit(3, "worker-1", -9)
    v = check_duplicates(h.run("a", 10, worker="w2").sorted())
    assert v.valid is True and v.details["licensed"] == 1


def _rerun_after_exit(code: int, *, jobs: int = 1, holds: int = 8, gave_up: bool = False) -> H:
    """w1 runs ``jobs`` jobs, exits with ``code``; w2 runs them all again."""
    h = H().start(0, "worker-1", "w1", holds=holds).start(0, "worker-2", "w2", holds=holds)
    for n in range(jobs):
        h.enq(f"j{n}", 1).run(f"j{n}", 2 + n * 0.01)
    if gave_up:
        h.log(
            4,
            "shutdown: Redis x:1/0 unreachable while acking finished jobs (...); gave up "
            "at the grace deadline. Unfinished jobs stay in this worker's processing list",
        )
    h.exit(5, "worker-1", code)
    for n in range(jobs):
        h.run(f"j{n}", 10 + n * 0.01, worker="w2")
    return h


def test_a_rerun_after_a_graceful_sigterm_exit_is_not_licensed() -> None:
    """The bug this catches: a shutdown that puts finished (unacked) jobs back, so the next
    worker runs them again. A graceful exit 0 held nothing it could not give back."""
    v = check_duplicates(_rerun_after_exit(0).sorted())
    assert v.valid is False and v.details["unlicensed"] == 1
    assert check_duplicates(_rerun_after_exit(143).sorted()).valid is True  # forced exit


def test_a_graceful_exit_that_gave_up_at_its_grace_deadline_licenses_what_it_held() -> None:
    assert check_duplicates(_rerun_after_exit(0, gave_up=True).sorted()).valid is True


def test_a_death_licenses_at_most_what_the_worker_could_hold() -> None:
    assert check_duplicates(_rerun_after_exit(-9, jobs=4, holds=4).sorted()).valid is True
    v = check_duplicates(_rerun_after_exit(-9, jobs=6, holds=4).sorted())
    assert v.valid is False and v.details["unlicensed"] == 2
    assert "could hold at most 4" in v.summary


def test_a_death_licenses_only_jobs_that_worker_ran() -> None:
    h = H().start(0, "worker-1", "w1").start(0, "worker-2", "w2").start(0, "worker-3", "w3")
    h.enq("a", 1).run("a", 2, worker="w2").exit(5, "worker-1", -9).run("a", 10, worker="w3")
    v = check_duplicates(h.sorted())
    assert v.valid is False and v.details["unlicensed"] == 1


def test_a_frozen_worker_licenses_its_own_jobs_in_either_order() -> None:
    h = H().start(0, "worker-1", "w1").start(0, "worker-2", "w2").enq("a", 1)
    h.op(2, "w1", "execute", "invoke", job_id="a")
    h.op(3, "nemesis", "freeze", "invoke", target="worker-1")
    h.run("a", 10, worker="w2")  # recovered and rerun while w1 is frozen
    h.op(12, "nemesis", "freeze", "ok", target="worker-1")
    h.op(12.5, "w1", "execute", "ok", job_id="a")  # the zombie finishes its copy
    assert check_duplicates(h.sorted()).valid is True


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


# --- final state ---------------------------------------------------------------------------


def _final(h: H, t: float, where: dict[str, str], running: tuple[str, ...] = ()) -> H:
    return h.op(t, "runner", "final-state", "ok", where=where, running=list(running))


def test_a_finished_job_still_in_redis_after_the_final_stop_is_invalid() -> None:
    """The bug this catches: a worker that never acks. Its graceful stop puts the finished
    jobs back in the queue, where the next worker would silently run them again."""
    h = H().enq("a", 1).enq("b", 1).run("a", 2).run("b", 3)
    v = check_final_state(_final(h, 9, {"a": "queue:default"}).sorted())
    assert v.valid is False and v.details["examples"] == {"a": "queue:default"}
    assert "1 finished jobs still in Redis" in v.summary


def test_final_state_valid_when_redis_holds_no_finished_job() -> None:
    h = H().enq("a", 1).enq("b", 1, outcome="info").run("a", 2)
    v = check_final_state(_final(h, 9, {"b": "queue:default"}).sorted())
    assert v.valid is True  # b never ran: its place is the lost checker's business


def test_final_state_unknown_when_not_read_or_workers_still_running() -> None:
    h = H().enq("a", 1).run("a", 2)
    assert check_final_state(h.sorted()).valid is None
    assert check_final_state(_final(h, 9, {}, running=("worker-1",)).sorted()).valid is None


# --- spurious outage lines -----------------------------------------------------------------


def test_an_outage_line_outside_any_outage_is_invalid() -> None:
    """The bug this catches: a read timeout shorter than a slow reply (latency, bandwidth)."""
    h = H().fault("latency", 10, 20, outage=False).log(12, GOOD_LINE)
    v = check_spurious_outages(h.sorted(), slack=3)
    assert v.valid is False and v.details["spurious"] == 1


def test_outage_lines_inside_an_outage_or_just_after_its_heal_are_fine() -> None:
    h = H().fault("cut", 10, 20, outage=True).log(12, GOOD_LINE).log(22, GOOD_LINE)
    assert check_spurious_outages(h.sorted(), slack=3).valid is True
    assert check_spurious_outages(h.log(30, GOOD_LINE).sorted(), slack=3).valid is False
    noisy = H().fault("buffer", 10, 20, outage=False, noisy=True).log(12, GOOD_LINE)
    assert check_spurious_outages(noisy.sorted(), slack=3).valid is True


# --- watchdog ------------------------------------------------------------------------------

WATCHDOG_LINE = (
    "watchdog: fetch from queues [default] made no progress for 7.1 s (limit 6.5 s = block "
    "timeout + read timeout + margin) while Redis 127.0.0.1:1/0 counted as connected; "
    "resetting the connection and fetching again"
)


def test_a_watchdog_reset_with_read_timeouts_on_is_invalid() -> None:
    h = H().log(5, WATCHDOG_LINE, "ERROR").log(5.1, "fetch interrupted by the watchdog")
    v = check_watchdog(h.sorted(), allowed=False)
    assert v.valid is False and v.details["resets"] == 2
    assert check_watchdog(h.sorted(), allowed=True).valid is True
    quiet = H().log(1, "watchdog disabled (--watchdog-timeout 0): a stuck fetch loop ...")
    assert check_watchdog(quiet.sorted(), allowed=False).valid is True


# --- retry waits ---------------------------------------------------------------------------


def test_a_retry_wait_over_the_cap_is_invalid() -> None:
    """The bug this catches: a backoff without its cap (0.1, 0.2, ... 3.2 s)."""
    capped = H().log(1, GOOD_LINE.replace("0.8 s", "1.0 s"))
    assert check_retry_waits(capped.sorted(), cap=1.0).valid is True
    uncapped = capped.log(2, GOOD_LINE.replace("0.8 s", "3.2 s"))
    v = check_retry_waits(uncapped.sorted(), cap=1.0)
    assert v.valid is False and v.details["longest"] == 3.2
    assert check_retry_waits(H().log(1, "retrying in 1500 ms").sorted(), cap=1.0).valid is False


# --- who was recovered as dead -------------------------------------------------------------


def _two_workers() -> H:
    h = H().start(0, "worker-1", "w-1", ttl=5.0, heartbeat_interval=1.0)
    return h.start(0, "worker-2", "w-2", ttl=5.0, heartbeat_interval=1.0)


def test_recovering_a_live_worker_is_invalid() -> None:
    """The bug this catches: a heartbeat TTL shorter than the beat, or a slow link making a
    live worker look dead: its jobs run twice."""
    named = _two_workers().log(10, "recovered 3 job(s) from dead worker w-1", process="worker-2")
    v = check_recovered_workers(named.sorted())
    assert v.valid is False and "w-1" in v.summary
    anonymous = _two_workers().log(10, "recovered 3 jobs of dead workers", process="worker-2")
    assert check_recovered_workers(anonymous.sorted()).valid is False


def test_recovering_an_exited_or_long_frozen_worker_is_fine() -> None:
    line = "recovered 2 job(s) from dead worker w-1"
    dead = _two_workers().exit(5, "worker-1", -9).log(10, line, process="worker-2")
    assert check_recovered_workers(dead.sorted()).valid is True
    frozen = _two_workers().op(3, "nemesis", "freeze", "invoke", target="worker-1")
    assert check_recovered_workers(frozen.log(8, line, process="worker-2").sorted()).valid
    too_soon = _two_workers().op(3, "nemesis", "freeze", "invoke", target="worker-1")
    assert not check_recovered_workers(too_soon.log(4, line, process="worker-2").sorted()).valid
    own_start = _two_workers().exit(5, "worker-1", -9)
    own_start.log(
        6, "worker w-2 started: ...; recovered 2 jobs of dead workers", "INFO", "worker-2"
    )
    assert check_recovered_workers(own_start.sorted()).valid is True
    assert check_recovered_workers(_two_workers().log(9, "recovered 0 jobs").sorted()).valid


def test_a_live_worker_taken_for_dead_is_wrong_even_when_it_held_nothing() -> None:
    line = "recovered 0 job(s) of 1 dead worker(s) (heartbeat expired): w-1 (0 jobs); by worker w-2"
    live = _two_workers().log(9, line, process="worker-2")
    assert check_recovered_workers(live.sorted()).valid is False
    dead = _two_workers().exit(5, "worker-1", -9).log(10, line, process="worker-2")
    assert check_recovered_workers(dead.sorted()).valid is True


# --- logs: the recovery line must be the outage's, from a worker that lived ---------------


def test_another_workers_recovered_jobs_line_is_not_an_outage_recovery_line() -> None:
    """The accident this pins: in sigkill-outage, "recovered N jobs" matched the recovery
    pattern. A worker that logged the outage and lived through the heal owes "reachable again"."""
    h = H().fault("sigkill-outage", 10, 15, outage=True).log(11, GOOD_LINE)
    h.log(16, "recovered 3 jobs of dead workers", process="worker-2")
    h.log(16.5, "recovered 3 job(s) from 1 dead worker(s)", process="worker-2")
    v = check_logs(h.sorted(), bound=5)
    assert v.valid is False and "no recovery line" in v.summary and "worker-1" in v.summary
    assert "worker-2" not in v.summary  # it never saw the outage: it owes no recovery line
    killed = H().fault("sigkill-outage", 10, 15, outage=True).log(11, GOOD_LINE)
    killed.exit(13, "worker-1", -9)
    assert check_logs(killed.sorted(), bound=5).valid is True  # the dead owe nothing


def test_exits_expected_without_a_signal() -> None:
    h = H().op(5, "nemesis", "expect-exit", "ok", target="worker-2", expect_codes=[2], within=10)
    assert check_exits(h.exit(7, "worker-2", 2).sorted()).valid is True
    wrong = H().op(
        5, "nemesis", "expect-exit", "ok", target="worker-2", expect_codes=[2], within=10
    )
    assert check_exits(wrong.exit(7, "worker-2", 0).sorted()).valid is False


def test_a_frozen_worker_whose_jobs_were_recovered_must_say_it_was_presumed_dead() -> None:
    """The bug this catches: a zombie resumes silently and acks jobs it no longer owns."""
    h = _two_workers().op(3, "nemesis", "freeze", "invoke", target="worker-1")
    h.log(8, "recovered 2 job(s) of 1 dead worker(s): w-1 (2 jobs)", process="worker-2")
    h.op(10, "nemesis", "freeze", "ok", target="worker-1")
    v = check_zombies(h.sorted())
    assert v.valid is False and "never logged that it was presumed dead" in v.summary
    h.log(11, "worker w-1 was presumed dead: its lease expired and its jobs were recovered")
    assert check_zombies(h.sorted()).valid is True
    quiet = _two_workers().op(3, "nemesis", "freeze", "invoke", target="worker-1")
    quiet.op(4, "nemesis", "freeze", "ok", target="worker-1")  # too short: nothing recovered
    assert check_zombies(quiet.sorted()).valid is True


def test_a_fault_that_must_not_stop_work_is_a_stall_when_it_does() -> None:
    """The bug this catches: replies too large for the output buffer lost on every fetch, the
    worker holding jobs and finishing none until the limit is lifted."""
    h = _steady(H(), 0, 20, ran_until=5).fault("buffer", 5, 15, progress=True)
    v = check_progress(h.sorted(), bound=4)
    assert v.valid is False and v.summary.startswith("STALL")
    steady = _steady(H(), 0, 20, ran_until=20).fault("buffer", 5, 15, progress=True)
    assert check_progress(steady.sorted(), bound=4).valid is True
    outage = _steady(H(), 0, 20, ran_until=5).fault("cut", 5, 15)  # an outage may stop work
    assert check_progress(outage.sorted(), bound=4).valid is True


# --- holding (what one worker's processing lists hold) --------------------------------------


def _held(h: H, t: float, **lists: int) -> H:
    return h.op(t, "runner", "holding", "ok", lists=lists)


def test_a_worker_holding_more_than_its_window_is_invalid() -> None:
    """The bug this catches: the fetch asks for a full batch instead of its free slots, so a
    busy worker's processing lists hold more than concurrency + prefetch."""
    good = H().start(0, "worker-1", "w1", window=8)
    for n in range(10):
        _held(good, 1 + n * 0.1, w1=8 if n % 2 else 5)
    assert check_holding(good.sorted(), slack=3).valid is True
    bad = _held(H().start(0, "worker-1", "w1", window=8), 1, w1=8)
    _held(bad, 1.1, w1=11)
    v = check_holding(bad.sorted(), slack=3)
    assert v.valid is False and v.details["peaks"] == {"w1": 11}
    assert "w1 held 11 > 8" in v.summary


def test_a_lost_fetch_reply_may_add_one_batch_during_an_ambiguous_fault_and_just_after() -> None:
    h = H().start(0, "worker-1", "w1", window=8).fault("blackhole", 5, 10, ambiguous=True)
    _held(h, 7, w1=16)  # the batch of a lost reply, not adopted yet
    _held(h, 12, w1=14)  # within slack of the heal
    assert check_holding(h.sorted(), slack=3).valid is True
    assert check_holding(_held(h, 7.5, w1=17).sorted(), slack=3).valid is False
    late = _held(H().start(0, "worker-1", "w1", window=8), 20, w1=9)
    late.fault("blackhole", 5, 10, ambiguous=True)
    assert check_holding(late.sorted(), slack=3).valid is False
    clean = _held(H().start(0, "worker-1", "w1", window=8), 7, w1=9)
    clean.fault("latency", 5, 10, ambiguous=False)  # nothing can be lost: no extra batch
    assert check_holding(clean.sorted(), slack=3).valid is False


def test_holding_counts_twins_supervised_children_and_reports_unknown_ids() -> None:
    twins = H().start(0, "worker-1", "w1", window=8).start(1, "worker-2", "w1", window=8)
    assert check_holding(_held(twins, 2, w1=16).sorted(), slack=3).valid is True
    assert check_holding(_held(twins, 0.5, w1=16).sorted(), slack=3).valid is False
    sup = H().start(0, "worker-1", "sup", window=8)
    assert check_holding(_held(sup, 1, **{"sup-0": 8, "sup-1": 8}).sorted(), 3).valid is True
    assert check_holding(_held(sup, 2, **{"sup-1": 9}).sorted(), 3).valid is False
    v = check_holding(_held(H().start(0, "worker-1", "w1", window=8), 1, x=99).sorted(), 3)
    assert v.valid is True and v.details["unjudged"] == ["x"]


def test_a_failover_that_undoes_acks_is_not_judged_by_the_holding_bound() -> None:
    """The new primary may miss acks the old one took (asynchronous replication): the worker's
    lists hold its finished jobs again, and it reruns them. Not the worker's bug; after the
    failover and its slack the bound holds again."""
    h = H().start(0, "worker-1", "w1", window=8).fault("failover", 5, 10, rolls_back=True)
    _held(h, 8, w1=30)
    _held(h, 12, w1=30)  # within slack of the heal
    assert check_holding(h.sorted(), slack=3).valid is True
    assert check_holding(_held(h, 20, w1=9).sorted(), slack=3).valid is False
    plain = H().start(0, "worker-1", "w1", window=8).fault("blackhole", 5, 10, ambiguous=True)
    assert check_holding(_held(plain, 8, w1=30).sorted(), slack=3).valid is False


def test_holding_is_unknown_without_samples() -> None:
    assert check_holding(H().start(0, "worker-1", "w1", window=8).sorted(), 3).valid is None


# --- priority order ------------------------------------------------------------------------


def _backlog(per_queue: int = 20) -> H:
    """20 jobs preloaded on each of ``high`` and ``low``; one worker, window 2."""
    h = H().start(0, "worker-1", "w1", window=2, queues=["high", "low"])
    for q in ("high", "low"):
        for n in range(per_queue):
            h.op(0, "producer", "enqueue", "invoke", job_id=f"{q}{n}", queue=q)
            h.op(0.01, "producer", "enqueue", "ok", job_id=f"{q}{n}")
    return h


def test_lower_priority_jobs_fetched_while_higher_ones_wait_are_invalid() -> None:
    """The bug this catches: the batched fetch walks the queues lowest priority first."""
    good = _backlog()
    for n, job in enumerate([f"high{i}" for i in range(20)] + [f"low{i}" for i in range(20)]):
        good.run(job, 1 + n * 0.1)
    v = check_priority(good.sorted())
    assert v.valid is True and v.details["overtaken"] == 0
    bad = _backlog()
    for n, job in enumerate([f"low{i}" for i in range(20)] + [f"high{i}" for i in range(20)]):
        bad.run(job, 1 + n * 0.1)
    v = check_priority(bad.sorted())
    assert v.valid is False and v.details["overtaken"] == 20 and v.details["slack"] == 4


def test_priority_allows_a_batch_fetched_before_a_higher_job_arrived() -> None:
    """A high job enqueued after the low ones ahead of it were fetched (they wait in the
    window) may start after them; a few held by a dead worker stay within the slack."""
    h = _backlog(per_queue=0)
    for n in range(10):
        h.op(0, "producer", "enqueue", "invoke", job_id=f"low{n}", queue="low")
        h.op(0.01, "producer", "enqueue", "ok", job_id=f"low{n}")
        h.run(f"low{n}", 1 + n * 0.1)
    h.op(1.25, "producer", "enqueue", "invoke", job_id="high0", queue="high")
    h.op(1.26, "producer", "enqueue", "ok", job_id="high0")
    h.run("high0", 1.45)  # low2 and low3 were fetched before it arrived
    assert check_priority(h.sorted()).details["overtaken"] == 0
    held = _backlog()
    order = [f"high{i}" for i in range(4, 20)] + [f"low{i}" for i in range(20)]
    order += [f"high{i}" for i in range(4)]  # held by a worker that died, recovered late
    for n, job in enumerate(order):
        held.run(job, 1 + n * 0.1)
    v = check_priority(held.sorted())
    assert v.valid is True and v.details["overtaken"] == 4


def test_priority_with_one_queue_has_nothing_to_judge() -> None:
    h = H().start(0, "worker-1", "w1", window=2, queues=["default"]).enq("a", 0).run("a", 1)
    assert check_priority(h.sorted()).valid is True


def test_priority_does_not_judge_a_worker_whose_window_it_does_not_know() -> None:
    h = _backlog()
    for n, job in enumerate([f"low{i}" for i in range(20)] + [f"high{i}" for i in range(20)]):
        h.run(job, 1 + n * 0.1, worker="stranger")
    v = check_priority(h.sorted())
    assert v.valid is True and v.details["overtaken"] == 0


def test_check_all_judges_holding_and_priority() -> None:
    names = [v.checker for v in check_all(H().sorted(), Limits())]
    assert "holding" in names and "priority" in names
