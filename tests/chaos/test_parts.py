"""The suite's own pure parts: record reading, log parsing, judging, reports. No components."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from chaos.checkers import Verdict
from chaos.report import summary_table, verdict_text, write_json, write_junit
from chaos.runner import RunResult, judge, numbers, scenario_seed
from chaos.scenarios import BY_NAME, SCENARIOS, WorkerSettings, select
from chaos.workload.process import parse_log_line
from chaos.workload.records import RecordReader


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
    assert [s.name for s in select("blackhole")] == ["blackhole-down", "blackhole-up"]
    assert select("nothing-like-this") == []
    assert "--read-timeout" in BY_NAME["broken-no-read-timeout"].worker.argv()
    assert WorkerSettings().recovery_bound < 10


def test_seed_derivation_is_stable_and_per_run() -> None:
    assert scenario_seed(1, "cut", "local") == scenario_seed(1, "cut", "local")
    assert scenario_seed(1, "cut", "local") != scenario_seed(1, "cut", "docker")
    assert scenario_seed(1, "cut", "local") != scenario_seed(2, "cut", "local")
