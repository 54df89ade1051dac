"""``steadfetch chaos list|run`` through the real console script (the entry-point plugin)."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.env.stack import selected_envs
from chaos.scenarios import SCENARIOS
from chaos.workload.process import STEADFETCH as STEADFETCH_SCRIPT

STEADFETCH = str(STEADFETCH_SCRIPT)


def steadfetch(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEADFETCH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_chaos_list_names_every_scenario() -> None:
    done = steadfetch("chaos", "list")
    assert done.returncode == 0, done.stderr
    for scenario in SCENARIOS:
        assert scenario.name[:15] in done.stdout


def test_chaos_run_with_no_matching_scenario_is_a_usage_error() -> None:
    done = steadfetch("chaos", "run", "-k", "no-such-scenario")
    assert done.returncode == 2
    assert "no scenario matches" in done.stdout


@pytest.mark.chaos
@pytest.mark.skipif("local" not in selected_envs(), reason="STEADFETCH_CHAOS_ENV excludes local")
def test_chaos_run_writes_reports_and_replays_its_seed(tmp_path: Path) -> None:
    junit, report = tmp_path / "chaos.xml", tmp_path / "chaos.json"
    args = ["chaos", "run", "-k", "cut", "--env", "local", "--seed", "1234"]
    args += ["--junit", str(junit), "--json", str(report), "--workdir", str(tmp_path)]
    done = steadfetch(*args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chaos seed 1234" in done.stdout and "1 of 1 passed" in done.stdout
    data = json.loads(report.read_text())
    assert data["seed"] == 1234 and data["passed"] is True
    (result,) = data["results"]
    assert result["scenario"] == "cut" and result["numbers"]["lost"] == 0
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
