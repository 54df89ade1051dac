"""Mutation testing: the chaos suite must catch each bug of the catalogue (``chaos/mutants.py``).

The fast tests at the top check the tool itself: a mutant changes one spot of a scratch copy
and never the checkout, a drifted source fails loudly, and a worker that did not import the
scratch copy is an error, not a kill. The slow ones (markers ``chaos`` and ``mutation``) run each
mutant's scenarios in the local environment and fail when it survives; the extra scenarios the
catalogue defines must pass on the real worker, so a kill is never a scenario's own fault.

``STEADFETCH_CHAOS_SEED=N`` replays a run, as does ``steadfetch chaos mutate --seed N -k NAME``.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from steadfetch.chaos.checkers import Verdict
from steadfetch.chaos.mutants import EXTRA_SCENARIOS, MUTANTS, scenario
from steadfetch.chaos.mutate import (
    PROBE_ENV,
    ROUNDS,
    SOURCE_ROOT,
    Mutant,
    MutantDrift,
    MutantError,
    MutantResult,
    Scratch,
    ScratchNotImported,
    Spot,
    apply,
    attempts,
    caught_by,
    check_imports,
    make_scratch,
    read_probe,
    run_against,
    run_mutant,
    score,
    scratch_env,
)
from steadfetch.chaos.runner import RunResult
from steadfetch.chaos.workload.process import STEADFETCH as STEADFETCH_SCRIPT
from tests.fixtures import require

SEED = int(os.environ.get("STEADFETCH_CHAOS_SEED") or random.randrange(2**31))
STEADFETCH = str(STEADFETCH_SCRIPT)
AREAS = {"fetch", "ack", "recovery", "retry", "timeouts", "watchdog", "heartbeats", "shutdown"}
SOURCE_MUTANTS = [m for m in MUTANTS if m.file is not None]


def mutant(**changes: object) -> Mutant:
    fields: dict[str, object] = {
        "name": "test-mutant",
        "area": "retry",
        "file": "fetcher/retry.py",
        "find": "        full = min(self.cap, self.base * 2.0 ** min(attempt - 1, 62))\n",
        "replace": "        full = self.base * 2.0 ** min(attempt - 1, 62)\n",
        "catches": ("cut",),
        "why": "a test",
    }
    fields.update(changes)
    return Mutant(**fields)  # type: ignore[arg-type]


# --- the catalogue -------------------------------------------------------------------------


def test_the_catalogue_covers_what_the_suite_exists_to_catch() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
    assert len(SOURCE_MUTANTS) >= 15
    assert AREAS | {"logging"} <= {m.area for m in MUTANTS}
    # The two deliberately broken configurations come first and change no source.
    assert [m.catches for m in MUTANTS[:2]] == [("broken-no-read-timeout",), ("broken-fast-kill",)]
    assert all(m.file is None for m in MUTANTS[:2])
    for m in MUTANTS:
        for name in m.catches:
            assert scenario(name).known_bug is None, f"{m.name}: {name} fails on its own"


@pytest.mark.parametrize("m", SOURCE_MUTANTS, ids=lambda m: m.name)
def test_each_mutant_applies_to_this_checkout(m: Mutant, tmp_path: Path) -> None:
    scratch = make_scratch(m, parent=tmp_path)
    spot = scratch.spot
    assert spot is not None
    original = (SOURCE_ROOT / spot.file).read_text()
    mutated = (scratch.package / spot.file).read_text()
    assert spot.find in original and spot.find not in mutated and spot.replace in mutated


# --- the tool ------------------------------------------------------------------------------


def test_a_mutant_changes_one_spot_of_the_scratch_copy_and_never_the_checkout(
    tmp_path: Path,
) -> None:
    m = mutant()
    before = (SOURCE_ROOT / "fetcher/retry.py").read_text()
    made = make_scratch(m, parent=tmp_path)
    scratch = made.package
    assert (SOURCE_ROOT / "fetcher/retry.py").read_text() == before
    mutated = (scratch / "fetcher/retry.py").read_text()
    assert mutated.startswith(before.replace(m.find, m.replace))
    assert PROBE_ENV in mutated.removeprefix(before.replace(m.find, m.replace))
    # One package, steadfetch, laid out as installed: the public API module, the two parts a
    # mutant may change, and chaos linked to the original (unchanged).
    assert [p.name for p in made.path.iterdir()] == ["steadfetch"]
    assert sorted(p.name for p in scratch.iterdir()) == [
        "__init__.py",
        "chaos",
        "fetcher",
        "worker",
    ]
    assert (scratch / "chaos").resolve() == SOURCE_ROOT / "chaos"
    assert (
        (scratch / "__init__.py")
        .read_text()
        .startswith((SOURCE_ROOT / "steadfetch/__init__.py").read_text())
    )
    assert (scratch / "fetcher/lua/ack.lua").read_text() == (
        SOURCE_ROOT / "fetcher/lua/ack.lua"
    ).read_text()
    assert not list(made.path.rglob("__pycache__"))


def test_a_drifted_source_fails_loudly(tmp_path: Path) -> None:
    gone = mutant(find="        full = min(self.cap, 2 * self.base)\n")
    with pytest.raises(MutantDrift, match=r"occurs 0 times in fetcher/retry\.py"):
        make_scratch(gone, parent=tmp_path)
    twice = mutant(file="fetcher/lua/ack.lua", find="local", replace="global")
    with pytest.raises(MutantDrift, match=r"occurs \d+ times .* exactly once"):
        make_scratch(twice, parent=tmp_path)
    moved = mutant(file="fetcher/no_such_module.py")
    with pytest.raises(MutantDrift, match="does not exist any more"):
        make_scratch(moved, parent=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-made scratch copy is left behind


def test_a_variant_applies_where_the_main_spot_drifted_but_never_both(tmp_path: Path) -> None:
    here = Spot("fetcher/retry.py", "full = min(self.cap, ", "full = min(2 * self.cap, ")
    elsewhere = mutant(file="fetcher/gone.py", variants=(here,))
    assert make_scratch(elsewhere, parent=tmp_path).spot == here
    both = mutant(variants=(here,))
    with pytest.raises(MutantDrift, match=r"2 of its spots apply"):
        make_scratch(both, parent=tmp_path)


def test_a_mutant_that_does_not_compile_is_an_error_not_a_kill(tmp_path: Path) -> None:
    broken = mutant(replace="        full = min(self.cap,\n")
    with pytest.raises(MutantError, match=r"breaks the syntax of fetcher/retry\.py"):
        make_scratch(broken, parent=tmp_path)
    with pytest.raises(MutantError, match="configuration"):
        apply(MUTANTS[0], tmp_path)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run ``argv`` with ``env`` added to this environment (as the chaos Launcher does); its pid."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert proc.wait(timeout=60) == 0
    return proc.pid


def test_a_worker_started_with_the_scratch_environment_imports_the_scratch_copy(
    tmp_path: Path,
) -> None:
    m = mutant(
        area="heartbeats",
        file="worker/config.py",
        find="        return 3 * self.heartbeat_interval",
        replace="        return 0.5 * self.heartbeat_interval",
    )
    scratch = make_scratch(m, parent=tmp_path)
    probe = tmp_path / "probe"
    pid = _run([STEADFETCH, "run", "--help"], tmp_path, scratch_env(scratch.path, probe))
    check_imports(probe, scratch, [("worker-1", pid)])
    required = ["steadfetch", "steadfetch.fetcher", "steadfetch.worker"]
    assert scratch.modules == [*required, "steadfetch.worker.config"]
    assert set(read_probe(probe)[pid]) >= {*required, "steadfetch.worker.config"}


def test_a_worker_that_ran_the_original_code_is_an_error(tmp_path: Path) -> None:
    scratch = make_scratch(mutant(), parent=tmp_path)
    probe = tmp_path / "probe"
    # The trap: `python -m steadfetch.worker` from the checkout puts the checkout (and its
    # steadfetch/) first on sys.path, ahead of PYTHONPATH: the original code runs, not the mutant.
    env = scratch_env(scratch.path, probe)
    pid = _run([sys.executable, "-m", "steadfetch.worker", "--help"], SOURCE_ROOT, env)
    with pytest.raises(
        ScratchNotImported, match=r"worker-1 \(pid \d+\) did not import steadfetch "
    ):
        check_imports(probe, scratch, [("worker-1", pid)])
    with pytest.raises(ScratchNotImported, match="no worker process"):
        check_imports(probe, scratch, [])


def test_a_probe_pointing_outside_the_scratch_copy_is_an_error(tmp_path: Path) -> None:
    scratch = Scratch(tmp_path / "scratch")
    probe = tmp_path / "probe"
    probe.write_text(f"7 steadfetch.fetcher {SOURCE_ROOT / 'fetcher/__init__.py'}\n")
    with pytest.raises(ScratchNotImported, match=r"imported steadfetch\.fetcher from /"):
        check_imports(probe, scratch, [("worker-1", 7)])


def _result(verdicts: list[Verdict], error: str | None = None) -> RunResult:
    return RunResult("cut", "local", 1, verdicts, None, False, [], False, 1.0, Path("."), error)


def test_what_counts_as_a_kill() -> None:
    valid, unknown = Verdict("lost", True, ""), Verdict("recovery", None, "")
    assert caught_by(_result([valid, unknown])) == []
    assert caught_by(_result([valid, Verdict("logs", False, "")])) == ["logs"]
    assert caught_by(_result([valid], error="TimeoutError: first job")) == ["harness"]


def test_a_mutant_naming_an_unknown_scenario_is_an_error(tmp_path: Path) -> None:
    lost = mutant(catches=("no-such-scenario",))
    result = asyncio.run(run_mutant(lost, seed=1, workdir=tmp_path))
    assert result.status == "error" and result.failed
    assert "no scenario named 'no-such-scenario'" in (result.error or "")


def test_a_survivor_of_round_one_gets_a_second_round_with_the_next_seed() -> None:
    assert attempts(("cut", "latency"), 2, 7) == [
        (1, "cut", 7), (1, "latency", 7), (2, "cut", 8), (2, "latency", 8),
    ]  # fmt: skip
    assert attempts(("cut",), 1, 7) == [(1, "cut", 7)]


def test_only_an_unexpected_survivor_or_an_error_fails_the_run() -> None:
    known = mutant(survivor="no checker looks at it yet")
    results = [
        MutantResult(mutant(), "killed"),
        MutantResult(known, "survived"),
        MutantResult(mutant(), "survived"),
        MutantResult(mutant(), "error", error="drifted"),
    ]
    assert [r.failed for r in results] == [False, False, True, True]
    assert score(results) == (1, 3)  # errors are not judged: they fail on their own


# --- the mutation run (slow) ---------------------------------------------------------------

MUTATION = [pytest.mark.chaos, pytest.mark.mutation]
# Scenarios in which no job may finish twice on the real worker (no death, no lost reply).
NO_RERUN = {"restart-under-load"}


def _param(m: Mutant) -> object:
    marks = [*MUTATION, pytest.mark.timeout(200 * len(m.catches) * ROUNDS)]
    if m.survivor is not None:
        marks.append(pytest.mark.xfail(strict=False, reason=f"known survivor: {m.survivor}"))
    return pytest.param(m, id=m.name, marks=marks)


@pytest.mark.parametrize("m", [_param(m) for m in MUTANTS])
def test_the_suite_kills_the_mutant(m: Mutant, tmp_path: Path) -> None:
    print(f"mutation seed {SEED}: replay with `steadfetch chaos mutate --seed {SEED} -k {m.name}`")
    result = require(lambda: asyncio.run(run_mutant(m, seed=SEED, workdir=tmp_path)))
    for run in result.runs:
        print(f"  {run.scenario}: caught by {run.caught_by or 'nothing'}; {run.run_dir}")
    assert result.status != "error", result.error
    assert score([result]) == (1, 1), (
        f"{m.name} SURVIVED {', '.join(m.catches)}: {m.why}. Reasons seen: "
        + "; ".join(reason for run in result.runs for reason in run.reasons)
    )


@pytest.mark.timeout(200)
@pytest.mark.parametrize("name", [pytest.param(s.name, marks=MUTATION) for s in EXTRA_SCENARIOS])
def test_the_catalogues_own_scenarios_pass_on_the_real_worker(name: str, tmp_path: Path) -> None:
    """Also proves the scratch copy end to end: the run is judged on an unchanged copy and every
    worker of it must have imported that copy."""
    result, scratch = require(
        lambda: asyncio.run(run_against(None, scenario(name), seed=SEED, workdir=tmp_path))
    )
    assert scratch is not None
    assert result.passed, "\n".join(result.reasons)
    if name in NO_RERUN:
        assert result.numbers["duplicates"] == 0
