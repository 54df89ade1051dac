"""``steadfetch chaos list|run`` through the real console script (the entry-point plugin)."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from steadfetch.chaos.env.binaries import remedy
from steadfetch.chaos.env.stack import selected_envs
from steadfetch.chaos.scenarios import SCENARIOS
from steadfetch.chaos.workload.process import STEADFETCH as STEADFETCH_SCRIPT

STEADFETCH = str(STEADFETCH_SCRIPT)


def steadfetch(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEADFETCH, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
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
    assert "replay: steadfetch chaos run --seed 1234 -k cut --env local" in done.stdout
    data = json.loads(report.read_text())
    assert data["seed"] == 1234 and data["passed"] is True
    (result,) = data["results"]
    assert result["scenario"] == "cut" and result["numbers"]["lost"] == 0
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"


def test_a_run_in_which_every_scenario_was_skipped_is_not_a_pass(tmp_path: Path) -> None:
    """A missing component skips its scenarios; if nothing ran, nothing was proven: exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["STEADFETCH_TOXIPROXY_SERVER"] = str(tmp_path / "no-toxiproxy-here")
    done = steadfetch("chaos", "run", "-k", "cut", "--env", "local", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "0 of 0 passed, 1 skipped" in done.stdout
    assert "nothing ran: every scenario was skipped" in done.stdout


def test_hints_for_a_missing_component_fit_where_steadfetch_is_installed() -> None:
    """In a checkout the hint is `scripts/dev setup`; a pip user has no scripts/, so theirs says
    how to get each binary by hand."""
    assert "scripts/dev setup" in remedy("redis-server", in_checkout=True)
    assert "scripts/dev setup" in remedy("toxiproxy-server", in_checkout=True)
    for component, words in (
        ("redis-server", "apt-get install redis-server"),
        ("toxiproxy-server", "go install github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0"),
    ):
        hint = remedy(component, in_checkout=False)
        assert words in hint and "scripts/dev" not in hint
    assert "docker/build-images.sh" in remedy("images", in_checkout=True)
    for component in ("docker", "images"):
        assert "scripts/dev" not in remedy(component, in_checkout=False)
