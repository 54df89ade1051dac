"""Every chaos scenario as a test, in each environment (``STEADFETCH_CHAOS_ENV`` narrows it).

The real ``steadfetch run`` binary runs against a real Redis through a real Toxiproxy, as local
processes or as Docker containers; the history it leaves is judged by the pure checkers. The
broken configurations are tests too: they pass only when the checker reports the failure.

Each test prints its seed; ``STEADFETCH_CHAOS_SEED=N`` replays a run, as does
``steadfetch chaos run --seed N -k NAME --env ENV``.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from steadfetch.chaos.env.stack import EnvName, selected_envs
from steadfetch.chaos.runner import RunResult, run_scenario
from steadfetch.chaos.scenarios import SCENARIOS, Scenario
from tests.fixtures import require

SEED = int(os.environ.get("STEADFETCH_CHAOS_SEED") or random.randrange(2**31))
ENV_PARAMS = [
    pytest.param(env, id=env, marks=[pytest.mark.docker] if env == "docker" else [])
    for env in selected_envs()
]
HEALTHY = [
    pytest.param(
        s,
        id=s.name,
        marks=[pytest.mark.xfail(strict=not s.intermittent, reason=s.known_bug)]
        if s.known_bug
        else [],
    )
    for s in SCENARIOS
    if not s.broken
]
BROKEN = [pytest.param(s, id=s.name) for s in SCENARIOS if s.broken]

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(180)]


def run(scenario: Scenario, env: EnvName, tmp_path: Path) -> RunResult:
    print(
        f"chaos seed {SEED}: replay with STEADFETCH_CHAOS_SEED={SEED} or "
        f"`steadfetch chaos run --seed {SEED} -k {scenario.name} --env {env}`"
    )
    result = require(lambda: asyncio.run(run_scenario(scenario, env, seed=SEED, workdir=tmp_path)))
    for v in result.verdicts:
        print(f"  {v.checker:<10} {v.label:<8} {v.summary}")
    print(f"  history and logs: {result.run_dir}")
    return result


@pytest.mark.parametrize("env", ENV_PARAMS)
@pytest.mark.parametrize("scenario", HEALTHY)
def test_worker_survives(scenario: Scenario, env: EnvName, tmp_path: Path) -> None:
    result = run(scenario, env, tmp_path)
    assert result.passed, "\n".join(result.reasons)
    assert result.valid is True
    assert result.numbers["lost"] == 0
    assert result.teardown == []


@pytest.mark.parametrize("env", ENV_PARAMS)
@pytest.mark.parametrize("scenario", BROKEN)
def test_checker_catches_broken_worker(scenario: Scenario, env: EnvName, tmp_path: Path) -> None:
    result = run(scenario, env, tmp_path)
    assert result.error is None, result.error
    assert result.teardown == []
    verdicts = {v.checker: v for v in result.verdicts}
    for checker, expected in scenario.expect.items():
        assert verdicts[checker].valid is expected, verdicts[checker].summary
    if scenario.expect.get("recovery") is False:
        assert verdicts["recovery"].summary.startswith("LOCK-UP")
    if scenario.expect.get("lost") is False:
        assert result.numbers["lost"] > 0
