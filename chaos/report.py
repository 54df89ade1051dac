"""Reports: a rich summary table, JUnit XML and JSON."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from steadfetch.chaos.runner import RunResult


def verdict_text(result: RunResult) -> str:
    """Short words for the table: PASS, LOCK-UP, LOST 12, ... (what the checkers found)."""
    if result.skipped:
        return "skipped"
    found = []
    for v in result.verdicts:
        if v.valid is False:
            if v.checker == "recovery" and "LOCK-UP" in v.summary:
                found.append("LOCK-UP")
            elif v.checker == "lost":
                found.append(f"LOST {v.details.get('lost', '?')}")
            else:
                found.append(v.checker.upper())
        elif v.valid is None:
            found.append(f"{v.checker}?")
    if result.error:
        found.append("ERROR")
    return ", ".join(found) or "valid"


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _lost(n: dict[str, object]) -> str:
    """Lost by the worker; after a Sentinel failover also what Redis itself dropped
    (``0 +43 failover``: acknowledged by the old primary, never replicated)."""
    by_failover = n.get("lost_by_failover")
    return _fmt(n.get("lost")) + (f" +{by_failover} failover" if by_failover else "")


def summary_table(results: Sequence[RunResult], seed: int) -> Table:
    table = Table(title=f"steadfetch chaos — seed {seed}", title_justify="left")
    for column in ("scenario", "env", "verdict", "expected", "jobs", "lost", "dup", "recovery"):
        table.add_column(column, justify="right" if column in ("jobs", "lost", "dup") else "left")
    table.add_column("errors logged", justify="right")
    table.add_column("time", justify="right")
    table.add_column("result")
    for r in results:
        n = r.numbers
        expected = "broken" if r.broken else "valid"
        outcome = (
            "[yellow]SKIP[/]"
            if r.skipped
            else "[green]PASS[/]"
            if r.passed
            else "[red bold]FAIL[/]"
        )
        table.add_row(
            r.scenario,
            r.env,
            verdict_text(r),
            expected,
            _fmt(n.get("jobs")),
            _lost(n),
            _fmt(n.get("duplicates")),
            _fmt(n.get("recovery_s"), " s"),
            _fmt(n.get("errors_logged")),
            f"{r.duration:.0f} s",
            outcome,
        )
    return table


def write_json(results: Sequence[RunResult], path: Path, seed: int) -> None:
    payload = {
        "seed": seed,
        "finished_at": time.time(),
        "passed": all(r.passed for r in results),
        "results": [r.to_dict() for r in results],
    }
    path.write_text(json.dumps(payload, indent=2, default=str))


def write_junit(results: Sequence[RunResult], path: Path, seed: int) -> None:
    """One ``testcase`` per scenario and environment (classname ``chaos.ENV``)."""
    suite = ET.Element(
        "testsuite",
        name="steadfetch-chaos",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if not r.passed and not r.skipped)),
        skipped=str(sum(1 for r in results if r.skipped)),
        time=f"{sum(r.duration for r in results):.2f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="seed", value=str(seed))
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=f"chaos.{r.env}", name=r.scenario, time=f"{r.duration:.2f}"
        )
        if r.skipped:
            ET.SubElement(case, "skipped", message=r.skipped)
        elif not r.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(r.reasons)[:500])
            failure.text = "\n".join(r.reasons)
        out = ET.SubElement(case, "system-out")
        lines = [f"seed {r.seed} (run dir {r.run_dir})"]
        lines += [f"{v.checker}: {v.label}: {v.summary}" for v in r.verdicts]
        out.text = "\n".join(lines)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
