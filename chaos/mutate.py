"""Mutation testing of the chaos suite: does it catch the bugs it exists to catch?

A *mutant* is one realistic bug, written as a one-spot source change (``find`` → ``replace``)
in one file of the product packages (``fetcher/``, ``worker/``). For each mutant the tool copies
both packages into a scratch ``steadfetch`` package (with the public ``steadfetch/__init__.py``;
``chaos`` is linked, unchanged), applies the change there (never to the checkout: no switch in
production code can turn a mutant on), and runs the mutant's scenarios in the local environment
with the worker under test importing the scratch copy first (``PYTHONPATH``). The
mutant is *killed* when the suite would have gone red: a checker judged the run INVALID, the
harness failed, or the teardown found something left behind. Otherwise it *survived*.

Three ways a mutant run can be dishonest, and each is an error here, never a kill or a pass:

- the source drifted: ``find`` no longer occurs exactly once in the file (:class:`MutantDrift`);
- the mutated Python file no longer compiles (a broken mutant, :class:`MutantError`);
- the worker did not run the scratch copy (:class:`ScratchNotImported`): every scratch copy
  carries an import probe, and every worker process of the run must have reported importing
  ``steadfetch``, ``steadfetch.fetcher``, ``steadfetch.worker`` and the mutated module from the
  scratch directory.

The catalogue is :mod:`chaos.mutants`; ``steadfetch chaos mutate`` and
``tests/chaos/test_mutate.py`` run it. This module imports only the standard library at the top:
``chaos.cli`` (imported by every ``steadfetch`` invocation) reaches it lazily.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import argparse

    from steadfetch.chaos.runner import RunResult
    from steadfetch.chaos.scenarios import Scenario

PACKAGE = "steadfetch"
PACKAGES = ("fetcher", "worker")
"""The parts a mutant may change: copied into the scratch package (``chaos`` is linked)."""
SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""Where the product packages live (this checkout, or ``site-packages/steadfetch`` for a wheel):
the originals the scratch copies come from. Mutant files are relative to it (``worker/app.py``)."""
PROBE_ENV = "STEADFETCH_MUTANT_PROBE"
SCRATCH_PREFIX = "steadfetch-mutant-"

Status = Literal["killed", "survived", "error"]


class MutantError(Exception):
    """A mutant could not be run honestly (the message says which and what to fix)."""


class MutantDrift(MutantError):
    """The text a mutant replaces no longer occurs exactly once: the source changed under it."""


class ScratchNotImported(MutantError):
    """A worker of a mutant run did not import the scratch copy: it ran the original code."""


class Spot(NamedTuple):
    """One place to change: ``find`` (which must occur exactly once in ``file``) → ``replace``."""

    file: str
    find: str
    replace: str

    @property
    def module(self) -> str | None:
        """The dotted module ``file`` is (None for Lua files)."""
        if not self.file.endswith(".py"):
            return None
        dotted = self.file.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        return f"{PACKAGE}.{dotted}"


@dataclass(frozen=True)
class Mutant:
    """One injected bug.

    ``file`` is relative to the checkout (``worker/worker.py``, ``fetcher/lua/ack.lua``); ``find``
    must occur in it exactly once. ``file=None`` marks a mutant that is a worker *configuration*
    (the catalogue's deliberately broken scenarios): its scenario already runs the broken worker,
    on the original code. ``catches`` names the scenarios that should kill it, cheapest first;
    they run in order until one does. ``survivor`` is set for a bug the suite cannot catch yet,
    with the reason: its survival is reported but does not fail the run.

    ``variants`` write the same bug for another shape of the code (a branch being merged that
    moved or rewrote the spot): exactly one of the mutant's spots must apply to the tree.
    """

    name: str
    area: str
    file: str | None
    find: str
    replace: str
    catches: tuple[str, ...]
    why: str
    survivor: str | None = None
    variants: tuple[Spot, ...] = ()

    def __post_init__(self) -> None:
        if not self.catches:
            raise ValueError(f"mutant {self.name}: name at least one scenario that catches it")
        if any(not spot.find or spot.find == spot.replace for spot in self.spots):
            raise ValueError(f"mutant {self.name}: find must be non-empty and differ from replace")

    @property
    def spots(self) -> tuple[Spot, ...]:
        """Where the bug may go: the main spot, then its variants (none for a configuration)."""
        if self.file is None:
            return ()
        return (Spot(self.file, self.find, self.replace), *self.variants)


# --- the scratch copy ----------------------------------------------------------------------

PROBE = f'''

# --- steadfetch chaos mutate: import probe (scratch copies only, never in the checkout) ---
def _steadfetch_mutant_probe() -> None:
    import os

    path = os.environ.get("{PROBE_ENV}")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{{os.getpid()}} {{__name__}} {{__file__}}\\n".encode())
        finally:
            os.close(fd)


_steadfetch_mutant_probe()
del _steadfetch_mutant_probe
'''


def apply(mutant: Mutant, root: Path) -> Spot:
    """Apply ``mutant`` to the tree under ``root`` (a scratch copy); returns the spot changed.

    Raises MutantDrift unless exactly one of its spots has its ``find`` exactly once (and the
    others not at all), MutantError when the result is Python that no longer compiles.
    """
    if mutant.file is None:
        raise MutantError(f"mutant {mutant.name} is a configuration: there is no source to change")
    found: list[tuple[Spot, Path, str]] = []
    problems: list[str] = []
    for spot in mutant.spots:
        path = root / spot.file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{spot.file} does not exist any more")
            continue
        count = text.count(spot.find)
        if count == 1:
            found.append((spot, path, text))
        else:
            problems.append(f"the text it replaces occurs {count} times in {spot.file}")
    if len(found) != 1:
        if found:
            problems = [
                f"{len(found)} of its spots apply ({', '.join(s.file for s, _, _ in found)})"
            ]
        raise MutantDrift(
            f"mutant {mutant.name}: {'; '.join(problems)} (it must occur exactly once): the "
            f"source drifted; update the mutant in chaos/mutants.py. Text: {mutant.find!r}"
        )
    spot, path, text = found[0]
    changed = text.replace(spot.find, spot.replace)
    if path.suffix == ".py":
        try:
            compile(changed, str(path), "exec")
        except SyntaxError as exc:
            raise MutantError(
                f"mutant {mutant.name} breaks the syntax of {spot.file}: {exc}"
            ) from exc
    path.write_text(changed, encoding="utf-8")
    return spot


@dataclass(frozen=True)
class Scratch:
    """A scratch copy of the product packages, with the spot a mutant changed in it (if any).

    ``path`` goes first on the worker's ``PYTHONPATH``; the package is ``path/steadfetch``, with
    ``fetcher/`` and ``worker/`` beneath it as in the wheel."""

    path: Path
    spot: Spot | None = None

    @property
    def package(self) -> Path:
        """The scratch ``steadfetch`` package: mutant files are relative to it."""
        return self.path / PACKAGE

    @property
    def modules(self) -> list[str]:
        """The modules a worker must have imported from this copy."""
        required = [PACKAGE, *(f"{PACKAGE}.{part}" for part in PACKAGES)]
        extra = self.spot.module if self.spot is not None else None
        return [*required, *([extra] if extra and extra not in required else [])]


def public_api_init() -> Path:
    """The original ``steadfetch/__init__.py`` (already imported: this module is beneath it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise MutantError(f"cannot find the {PACKAGE} package this module belongs to")
    return Path(spec.origin)


def make_scratch(mutant: Mutant | None, *, parent: Path | None = None) -> Scratch:
    """Copy ``steadfetch/__init__.py``, ``fetcher/`` and ``worker/`` to a new scratch
    ``steadfetch`` package (``chaos/`` linked, unchanged: the workload app and the plugin the
    CLI loads), apply ``mutant`` there (None: an unchanged copy) and add the import probe. The
    caller removes the directory."""
    scratch = Scratch(Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=parent)))
    try:
        scratch.package.mkdir()
        shutil.copyfile(public_api_init(), scratch.package / "__init__.py")
        for package in PACKAGES:
            shutil.copytree(
                SOURCE_ROOT / package,
                scratch.package / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        (scratch.package / "chaos").symlink_to(SOURCE_ROOT / "chaos", target_is_directory=True)
        probed = {"__init__.py", *(f"{package}/__init__.py" for package in PACKAGES)}
        spot = apply(mutant, scratch.package) if mutant is not None else None
        if spot is not None and spot.module is not None:
            probed.add(spot.file)
        for relative in sorted(probed):
            with (scratch.package / relative).open("a", encoding="utf-8") as f:
                f.write(PROBE)
    except BaseException:
        shutil.rmtree(scratch.path, ignore_errors=True)
        raise
    return Scratch(scratch.path, spot)


def scratch_env(scratch: Path, probe: Path) -> dict[str, str]:
    """The environment additions that make a worker import ``scratch`` first (ahead of the
    editable install) and report its imports to ``probe``. The worker must be started as the
    ``steadfetch`` console script: ``python -m steadfetch.worker`` run from the checkout would
    put the checkout (its ``steadfetch/``) first on ``sys.path`` (the probe check catches that)."""
    rest = os.environ.get("PYTHONPATH")
    path = os.pathsep.join([str(scratch), *([rest] if rest else [])])
    return {"PYTHONPATH": path, PROBE_ENV: str(probe)}


def read_probe(probe: Path) -> dict[int, dict[str, str]]:
    """pid → {module: file} from a probe file (missing file: nothing was imported)."""
    seen: dict[int, dict[str, str]] = {}
    try:
        lines = probe.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return seen
    for line in lines:
        pid, module, file = line.split(" ", 2)
        seen.setdefault(int(pid), {})[module] = file
    return seen


def check_imports(probe: Path, scratch: Scratch, workers: Iterable[tuple[str, int]]) -> None:
    """Every worker (name, pid) imported ``steadfetch``, its parts and the mutated module from
    ``scratch``, else raise ScratchNotImported: a run of the original code proves nothing."""
    seen = read_probe(probe)
    root = scratch.path.resolve()
    problems: list[str] = []
    workers = list(workers)
    if not workers:
        problems.append("no worker process was started")
    for name, pid in workers:
        imported = seen.get(pid, {})
        for module in scratch.modules:
            file = imported.get(module)
            if file is None:
                problems.append(f"{name} (pid {pid}) did not import {module} from {root}")
            elif not Path(file).resolve().is_relative_to(root):
                problems.append(f"{name} (pid {pid}) imported {module} from {file}")
    if problems:
        raise ScratchNotImported(
            "the worker did not run the scratch copy, so this run says nothing about the "
            f"mutant: {'; '.join(problems)}"
        )


# --- running -------------------------------------------------------------------------------


@dataclass
class ScenarioRun:
    """One scenario run against one mutant (or an unchanged scratch copy)."""

    scenario: str
    seed: int
    caught_by: list[str]
    reasons: list[str]
    duration: float
    run_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "caught_by": self.caught_by,
            "reasons": self.reasons,
            "duration": round(self.duration, 2),
            "run_dir": str(self.run_dir),
        }


@dataclass
class MutantResult:
    mutant: Mutant
    status: Status
    runs: list[ScenarioRun] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    scratch: Path | None = None
    rounds: int = 1  # the round the verdict came from (see ROUNDS)

    @property
    def caught_by(self) -> list[str]:
        return self.runs[-1].caught_by if self.status == "killed" else []

    @property
    def killer(self) -> str | None:
        return self.runs[-1].scenario if self.status == "killed" else None

    @property
    def failed(self) -> bool:
        """Whether this result must fail the run: an error, or an unexpected survivor."""
        return self.status == "error" or (
            self.status == "survived" and self.mutant.survivor is None
        )

    def to_dict(self) -> dict[str, Any]:
        m = self.mutant
        return {
            "mutant": m.name,
            "area": m.area,
            "file": m.file,
            "why": m.why,
            "known_survivor": m.survivor,
            "status": self.status,
            "killed_by_scenario": self.killer,
            "caught_by": self.caught_by,
            "error": self.error,
            "duration": round(self.duration, 2),
            "runs": [r.to_dict() for r in self.runs],
            "rounds": self.rounds,
        }


def caught_by(result: RunResult) -> list[str]:
    """What in ``result`` would have turned the suite red: INVALID checkers, a harness error,
    something left behind. (Unknown verdicts are not counted: they kill nothing reliably.)"""
    found = [v.checker for v in result.verdicts if v.valid is False]
    if result.error is not None:
        found.append("harness")
    if result.teardown:
        found.append("teardown")
    return found


def strict(scenario: Scenario) -> Scenario:
    """``scenario`` judged as a healthy one: every checker must be valid."""
    return dataclasses.replace(scenario, expect={}, strict=True, broken=False)


async def run_against(
    mutant: Mutant | None, scenario: Scenario, *, seed: int, workdir: Path
) -> tuple[RunResult, Path | None]:
    """Run ``scenario`` in the local environment with the worker importing a scratch copy that
    carries ``mutant`` (None: an unchanged copy); configuration mutants run the original code.
    Raises ScratchNotImported when a worker ran anything but the scratch copy. Returns the
    result and the scratch directory (the caller removes it)."""
    from steadfetch.chaos.history import read_jsonl
    from steadfetch.chaos.runner import run_scenario
    from steadfetch.chaos.workload.process import Launcher

    if mutant is not None and mutant.file is None:
        return await run_scenario(strict(scenario), "local", seed=seed, workdir=workdir), None
    scratch = make_scratch(mutant, parent=workdir)
    probe = scratch.path / "imports.probe"
    launcher = Launcher(env=scratch_env(scratch.path, probe))
    result = await run_scenario(
        strict(scenario), "local", seed=seed, workdir=workdir, launcher=launcher
    )
    history = read_jsonl(result.run_dir / "history.jsonl")
    workers = [(op.process, int(op.value["pid"])) for op in history if op.f == "worker-start"]
    check_imports(probe, scratch, workers)
    return result, scratch.path


ROUNDS = 2
"""How many times a mutant's scenarios are tried before it counts as a survivor.

A fault scenario's timing is not the same twice (where in a batch the cut lands, which ack is
in flight at the kill), so a checker that catches a bug nearly every run can still miss it once
on a loaded machine. A second round, with the next seed, tells a bug the suite cannot catch (it
survives both) from one it caught late; the console line and the JSON report name the round."""


def attempts(catches: Sequence[str], rounds: int, seed: int) -> list[tuple[int, str, int]]:
    """(round, scenario, seed) in the order they run: every scenario of round 1 (cheapest
    first) with ``seed``, then round 2's with ``seed + 1``, and so on."""
    return [(r + 1, name, seed + r) for r in range(rounds) for name in catches]


async def run_mutant(
    mutant: Mutant, *, seed: int, workdir: Path, keep: bool = False, rounds: int = ROUNDS
) -> MutantResult:
    """Run ``mutant``'s scenarios in order until one kills it, for up to ``rounds`` rounds (each
    with the next seed). Killed runs' directories and scratch copies are removed unless
    ``keep``; a survivor's or an error's are kept."""
    from steadfetch.chaos.mutants import scenario as find_scenario

    started = time.monotonic()
    outcome = MutantResult(mutant, "survived")
    leftovers: list[Path] = []
    try:
        for round_, name, round_seed in attempts(mutant.catches, rounds, seed):
            if outcome.status == "killed":
                break
            outcome.rounds = round_
            result, scratch = await run_against(
                mutant, find_scenario(name), seed=round_seed, workdir=workdir
            )
            leftovers += [result.run_dir, *([scratch] if scratch else [])]
            outcome.scratch = scratch
            found = caught_by(result)
            outcome.runs.append(
                ScenarioRun(
                    name, result.seed, found, result.reasons, result.duration, result.run_dir
                )
            )
            if found:
                outcome.status = "killed"
    except MutantError as exc:
        outcome.status, outcome.error = "error", str(exc)
    finally:
        outcome.duration = time.monotonic() - started
    if outcome.status == "killed" and not keep:
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
        outcome.scratch = None
    return outcome


def score(results: Sequence[MutantResult]) -> tuple[int, int]:
    """(killed, judged): errors are not judged (they are failures of their own)."""
    judged = [r for r in results if r.status != "error"]
    return sum(r.status == "killed" for r in judged), len(judged)


def select(mutants: Sequence[Mutant], pattern: str | None) -> list[Mutant]:
    """Mutants whose name contains any of the comma-separated substrings (all when None)."""
    if not pattern:
        return list(mutants)
    parts = [p.strip() for p in pattern.split(",") if p.strip()]
    return [m for m in mutants if any(p in m.name for p in parts)]


def describe(result: MutantResult) -> str:
    """One line per mutant for the console (rich markup)."""
    m = result.mutant
    took = f"{result.duration:.0f} s"
    late = f", round {result.rounds}: missed in round 1" if result.rounds > 1 else ""
    if result.status == "killed":
        return (
            f"[green]KILLED[/]   {m.name} by {', '.join(result.caught_by)} "
            f"in {result.killer}{late} ({took})"
        )
    if result.status == "error":
        return f"[red bold]ERROR[/]    {m.name}: {result.error}"
    tried = ", ".join(r.scenario for r in result.runs)
    if m.survivor is not None:
        return f"[yellow]SURVIVED[/] {m.name} in {tried} ({took}), a known survivor: {m.survivor}"
    return f"[red bold]SURVIVED[/] {m.name}: no checker caught it in {tried} ({took})"


def write_json(results: Sequence[MutantResult], path: Path, seed: int) -> None:
    killed, judged = score(results)
    report = {
        "seed": seed,
        "killed": killed,
        "judged": judged,
        "score": round(killed / judged, 4) if judged else None,
        "passed": not any(r.failed for r in results),
        "mutants": [r.to_dict() for r in results],
    }
    path.write_text(json.dumps(report, indent=2, default=str))


# --- the command ---------------------------------------------------------------------------


def cmd_mutate(args: argparse.Namespace) -> int:
    """``steadfetch chaos mutate``: run the catalogue, print per mutant what caught it, score."""
    import asyncio
    import random
    import sys

    from rich.console import Console

    from steadfetch.chaos.env.binaries import ComponentMissing
    from steadfetch.chaos.mutants import MUTANTS

    console = Console() if sys.stdout.isatty() else Console(width=160)
    mutants = select(MUTANTS, args.pattern)
    if not mutants:
        console.print(f"no mutant matches {args.pattern!r}; see `steadfetch chaos mutate --list`")
        return 2
    if args.list:
        for m in mutants:
            where = m.file or "configuration"
            console.print(f"{m.name:<28} {m.area:<10} {where:<24} {', '.join(m.catches)}")
            console.print(f"    {m.why}", highlight=False)
        return 0
    seed: int = args.seed if args.seed is not None else random.randrange(2**31)
    replay = f"steadfetch chaos mutate --seed {seed}"
    if args.pattern:
        replay += f" -k {args.pattern}"
    console.print(f"[bold]mutation seed {seed}[/] (replay: {replay})")
    workdir = Path(tempfile.mkdtemp(prefix="steadfetch-mutate-", dir=args.workdir))
    if args.baseline:
        return _baseline(console, mutants, seed, workdir)
    results: list[MutantResult] = []
    began = time.monotonic()
    for mutant in mutants:
        try:
            result = asyncio.run(run_mutant(mutant, seed=seed, workdir=workdir, keep=args.keep))
        except ComponentMissing as exc:
            console.print(f"[red bold]cannot run the mutants here[/]: {exc}")
            return 2
        results.append(result)
        console.print(describe(result))
        if result.status != "killed" or args.keep:
            for run in result.runs:
                console.print(f"    {run.scenario}: run directory {run.run_dir}", highlight=False)
            if result.scratch is not None:
                console.print(f"    scratch copy: {result.scratch}", highlight=False)
    killed, judged = score(results)
    percent = 100.0 * killed / judged if judged else 0.0
    errors = sum(r.status == "error" for r in results)
    console.print(
        f"mutation score: {killed}/{judged} killed ({percent:.0f}%)"
        + (f", {errors} errors" if errors else "")
        + f" in {time.monotonic() - began:.0f} s (seed {seed})"
    )
    if args.json:
        write_json(results, args.json, seed)
    if not any(r.runs and r.status != "killed" for r in results) and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(r.failed for r in results) else 0


def _baseline(console: Any, mutants: Sequence[Mutant], seed: int, workdir: Path) -> int:
    """Run each scenario the mutants use on an unchanged scratch copy: each must pass, or a
    kill in it would say nothing about the mutant."""
    import asyncio

    from steadfetch.chaos.mutants import scenario

    names = sorted({name for m in mutants if m.file is not None for name in m.catches})
    failed = 0
    for name in names:
        result, _ = asyncio.run(run_against(None, scenario(name), seed=seed, workdir=workdir))
        mark = "[green]PASS[/]" if result.passed else "[red bold]FAIL[/]"
        console.print(f"{mark} {name} on an unchanged copy ({result.duration:.0f} s)")
        for reason in result.reasons:
            console.print(f"    {reason}", highlight=False)
        if result.passed:
            shutil.rmtree(result.run_dir, ignore_errors=True)
        else:
            failed += 1
            console.print(f"    run directory: {result.run_dir}", highlight=False)
    console.print(f"baseline: {len(names) - failed} of {len(names)} scenarios pass (seed {seed})")
    return 1 if failed else 0
