"""The suite's own pure parts: record reading, log parsing, judging, reports. No components."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

from steadfetch.chaos.checkers import Verdict
from steadfetch.chaos.history import History
from steadfetch.chaos.report import summary_table, verdict_text, write_json, write_junit
from steadfetch.chaos.runner import Harness, RunResult, judge, numbers, scenario_seed
from steadfetch.chaos.scenarios import BY_NAME, RECOVERY_MARGIN, SCENARIOS, WorkerSettings, select
from steadfetch.chaos.workload.process import Launcher, parse_log_line, steadfetch_binary
from steadfetch.chaos.workload.records import RecordReader


def test_record_reader_returns_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "executions.jsonl"
    reader = RecordReader(path)
    assert reader.read_new() == []  # no file yet
    line = {"event": "start", "job_id": "a", "worker_id": "w1", "pid": 7, "time": 1.5}
    path.write_text(json.dumps(line) + "\n" + '{"event": "ok", "job_id"')
    ops = reader.read_new()
    assert [(op.f, op.type, op.value["job_id"], op.process) for op in ops] == [
        ("execute", "invoke", "a", "w1")
    ]
    with path.open("a") as f:
        f.write(': "a", "worker_id": "w1", "pid": 7, "time": 2.0}\n')
    assert [(op.type, op.time) for op in reader.read_new()] == [("ok", 2.0)]
    assert reader.read_new() == []


def test_parse_log_line_json_text_and_raw() -> None:
    entry = {"ts": "x", "level": "WARNING", "logger": "fetcher.connection", "message": "m"}
    assert parse_log_line(json.dumps(entry) + "\n") == {
        "level": "WARNING",
        "logger": "fetcher.connection",
        "message": "m",
    }
    text = "2026-11-27T10:00:00.123Z ERROR worker: fetch failed"
    assert parse_log_line(text)["level"] == "ERROR"
    assert parse_log_line("Traceback (most recent call last):")["level"] == "RAW"
    assert parse_log_line("{not json")["level"] == "RAW"


def _result(verdicts: list[Verdict], *, passed: bool, broken: bool = False) -> RunResult:
    return RunResult(
        "cut", "local", 7, verdicts, None, passed, [] if passed else ["lost: expected"], broken,
        1.0, Path("/nowhere"), numbers=numbers(verdicts),
    )  # fmt: skip


def test_judge_strict_and_broken_scenarios() -> None:
    good = [Verdict("lost", True, ""), Verdict("recovery", True, "")]
    assert judge(BY_NAME["cut"], good) == []
    assert judge(BY_NAME["cut"], [Verdict("rss", None, "no samples")]) != []
    lockup = [Verdict("recovery", False, "LOCK-UP"), Verdict("lost", False, "")]
    assert judge(BY_NAME["broken-no-read-timeout"], lockup) == []  # other checkers: don't care
    assert judge(BY_NAME["broken-no-read-timeout"], good) == [
        "recovery: expected False, got valid: "
    ]


def test_reports_carry_verdicts_and_seed(tmp_path: Path) -> None:
    lost = Verdict("lost", False, "3 of 9 jobs LOST", {"lost": 3, "acknowledged": 9})
    lockup = Verdict("recovery", False, "LOCK-UP: ...", {"max_recovery_s": None})
    failed = _result([lost, lockup], passed=False)
    passed = _result([Verdict("lost", True, "", {"lost": 0, "acknowledged": 9})], passed=True)
    assert verdict_text(failed) == "LOST 3, LOCK-UP"
    assert verdict_text(passed) == "valid"
    assert summary_table([failed, passed], seed=42).row_count == 2

    junit = tmp_path / "chaos.xml"
    write_junit([failed, passed], junit, seed=42)
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert suite.find("properties/property").get("value") == "42"  # type: ignore[union-attr]
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is not None and cases[1].find("failure") is None
    assert "LOCK-UP" in (cases[0].findtext("system-out") or "")

    report = tmp_path / "chaos.json"
    write_json([failed, passed], report, seed=42)
    data = json.loads(report.read_text())
    assert data["seed"] == 42 and data["passed"] is False
    assert data["results"][0]["verdicts"][0]["details"]["lost"] == 3


def test_catalogue_shape() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    assert sum(s.broken for s in SCENARIOS) >= 2
    assert all(s.expect and not s.strict for s in SCENARIOS if s.broken)
    assert [s.name for s in select("blackhole-down,blackhole-up")] == [
        "blackhole-down",
        "blackhole-up",
    ]
    assert [s.name for s in select("cut")] == ["cut"]  # an exact name: that one only
    assert "cut-backlog" in [s.name for s in select("cut-")]
    assert select("nothing-like-this") == []
    assert "--read-timeout" in BY_NAME["broken-no-read-timeout"].worker.argv()
    assert WorkerSettings().recovery_bound < 10


def test_seed_derivation_is_stable_and_per_run() -> None:
    assert scenario_seed(1, "cut", "local") == scenario_seed(1, "cut", "local")
    assert scenario_seed(1, "cut", "local") != scenario_seed(1, "cut", "docker")
    assert scenario_seed(1, "cut", "local") != scenario_seed(2, "cut", "local")


def test_one_place_builds_the_worker_process_and_a_launcher_can_replace_the_program(
    tmp_path: Path,
) -> None:
    """The mutation tool runs the scenarios against a mutated copy: it passes a Launcher."""
    stack = SimpleNamespace(direct_url="redis://127.0.0.1:1/0", proxied_url="redis://h:2/0")
    launcher = Launcher(command=("/py", "-m", "steadfetch.worker"), env={"PYTHONPATH": "/mutant"})
    scenario = BY_NAME["latency-up-3w"]
    harness = Harness(scenario, stack, History(), random.Random(1), tmp_path, launcher)  # type: ignore[arg-type]
    proc = harness.worker_process(2, "w-2")
    assert proc.argv[:5] == [
        "/py",
        "-m",
        "steadfetch.worker",
        "run",
        "steadfetch.chaos.workload.app:app",
    ]
    assert "redis://h:2/0" in proc.argv and proc.argv[proc.argv.index("--worker-id") + 1] == "w-2"
    assert proc.env["PYTHONPATH"] == "/mutant" and proc.env["STEADFETCH_WORKER_ID"] == "w-2"
    assert proc.facts == {
        # concurrency 4 + the adaptive prefetch's ceiling (10 x 4); twice that for a death
        "holds": 88,
        "window": 44,
        "ttl": scenario.worker.config().heartbeat_ttl,  # derived by the worker (8 s today)
        "heartbeat_interval": 1.0,
        "queues": ["default"],
    }
    default = Harness(scenario, stack, History(), random.Random(1), tmp_path)  # type: ignore[arg-type]
    assert default.worker_process(1, "w-1").argv[:2] == [*steadfetch_binary(), "run"][:2]


def test_recovery_bound_is_what_the_settings_imply() -> None:
    """Retry cap + one call stuck on a broken connection + a margin; an uncapped backoff
    (waits of 3.2 s, 6.4 s...) does not fit in it."""
    default = WorkerSettings()
    assert default.recovery_bound == default.retry_cap + 0.5 + 2.0 + RECOVERY_MARGIN
    watchdog = WorkerSettings(read_timeout=0, watchdog_timeout=3.0)
    assert watchdog.recovery_bound == 1.0 + 3.0 + 0.75 + RECOVERY_MARGIN
    assert BY_NAME["worker-kill"].limits.recovery_bound > BY_NAME["cut"].limits.recovery_bound
    assert BY_NAME["watchdog-blackhole"].limits.watchdog_allowed
    assert not BY_NAME["cut"].limits.watchdog_allowed
    assert BY_NAME["cut"].limits.retry_cap == default.retry_cap
