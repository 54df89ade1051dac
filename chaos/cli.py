"""``steadfetch chaos list|run``: the chaos catalogue from the command line.

Registered through the ``steadfetch.commands`` entry point. This module is imported by every
``steadfetch`` invocation (the worker under test too), so it imports nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

from steadfetch.chaos import IN_CI


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chaos = subparsers.add_parser(
        "chaos",
        help="run the chaos catalogue against the real worker",
        description="Run the real worker against a real Redis behind Toxiproxy while faults "
        "strike, and judge the recorded history.",
    )
    sub = chaos.add_subparsers(dest="chaos_command", metavar="{list,run,mutate}", required=True)
    listing = sub.add_parser("list", help="list the scenarios")
    listing.set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="run scenarios and report")
    run.add_argument(
        "-k",
        dest="pattern",
        default=None,
        help="only scenarios whose name contains this (comma-separated: any of them)",
    )
    run.add_argument(
        "--env",
        choices=("docker", "local"),
        default=None,
        help="one environment (default: local, then docker)",
    )
    run.add_argument("--junit", type=Path, default=None, help="write a JUnit XML report here")
    run.add_argument("--json", type=Path, default=None, help="write a JSON report here")
    run.add_argument("--seed", type=int, default=None, help="replay a run with its printed seed")
    run.add_argument(
        "--keep", action="store_true", help="keep every run directory (default: failed only)"
    )
    run.add_argument("--workdir", type=Path, default=None, help="where run directories go")
    run.set_defaults(func=cmd_run)
    mutate = sub.add_parser("mutate", help="inject known bugs and check the scenarios catch them")
    mutate.add_argument("-k", dest="pattern", default=None, help="only mutants matching this")
    mutate.add_argument("--json", type=Path, default=None, help="write a JSON report here")
    mutate.add_argument("--seed", type=int, default=None, help="replay with its printed seed")
    mutate.add_argument("--keep", action="store_true", help="keep killed mutants' runs too")
    mutate.add_argument("--workdir", type=Path, default=None, help="where runs and copies go")
    mutate.add_argument("--list", action="store_true", help="list the catalogue, run nothing")
    mutate.add_argument(
        "--baseline", action="store_true", help="run their scenarios on unchanged code instead"
    )
    mutate.set_defaults(func=cmd_mutate)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from steadfetch.chaos.scenarios import SCENARIOS

    table = Table("scenario", "fault", "worker", "expects")
    for s in SCENARIOS:
        expects = ", ".join(f"{k}={'valid' if v else 'INVALID'}" for k, v in s.expect.items())
        worker = " ".join(_non_default_flags(s.worker)) or "defaults"
        table.add_row(s.name, s.description, worker, expects or "all valid")
    Console().print(table)
    return 0


def cmd_mutate(args: argparse.Namespace) -> int:
    from steadfetch.chaos.mutate import cmd_mutate as run_mutants

    return run_mutants(args)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from steadfetch.chaos.env.binaries import ComponentMissing
    from steadfetch.chaos.env.stack import ENV_NAMES, EnvName
    from steadfetch.chaos.report import summary_table, write_json, write_junit
    from steadfetch.chaos.runner import RunResult, cleanup, run_scenario
    from steadfetch.chaos.scenarios import select
    from steadfetch.chaos.timeline import Timeline

    console = Console() if sys.stdout.isatty() else Console(width=160)
    scenarios = select(args.pattern)
    if not scenarios:
        console.print(f"no scenario matches {args.pattern!r}; see `steadfetch chaos list`")
        return 2
    seed: int = args.seed if args.seed is not None else random.randrange(2**31)
    envs: list[EnvName] = [args.env] if args.env else list(ENV_NAMES)
    replay = (
        f"steadfetch chaos run --seed {seed}"
        + (f" -k {args.pattern}" if args.pattern else "")
        + (f" --env {args.env}" if args.env else "")
    )
    console.print(f"[bold]chaos seed {seed}[/] (replay: {replay})")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    for env in envs:
        for scenario in scenarios:
            timeline = Timeline(console, scenario.name, env)
            try:
                with timeline:
                    result = asyncio.run(
                        run_scenario(
                            scenario, env, seed=seed, workdir=args.workdir, on_op=timeline.on_op
                        )
                    )
            except ComponentMissing as exc:
                result = RunResult.skip(scenario, env, seed, str(exc))
            results.append(result)
            _print_one(console, result, seed)
            if not args.keep and not result.skipped:
                cleanup(result)
    console.print(summary_table(results, seed))
    if args.junit:
        write_junit(results, args.junit, seed)
    if args.json:
        write_json(results, args.json, seed)
    failed = [r for r in results if not r.passed and (not r.skipped or IN_CI)]
    skipped = [r for r in results if r.skipped]
    ran = len(results) - len(skipped)
    console.print(
        f"seed {seed}: {ran - len([r for r in failed if not r.skipped])} of {ran} passed"
        + (f", {len(skipped)} skipped (a component is missing: see above)" if skipped else "")
    )
    if failed:
        return 1
    if not ran:
        console.print("nothing ran: every scenario was skipped, so nothing was proven")
        return 2
    return 0


def _print_one(console: Any, result: Any, seed: int) -> None:
    mark = (
        "[yellow]SKIP[/]"
        if result.skipped
        else "[green]PASS[/]"
        if result.passed
        else "[red]FAIL[/]"
    )
    console.print(f"{mark} {result.scenario} [{result.env}] in {result.duration:.0f} s")
    for reason in result.reasons:
        console.print(f"    {reason}")
    if not result.passed and not result.skipped:
        console.print(f"    run directory kept: {result.run_dir}")
        console.print(
            f"    replay: steadfetch chaos run --seed {seed} -k {result.scenario} "
            f"--env {result.env}"
        )


def _non_default_flags(settings: Any) -> list[str]:
    """The flags in which ``settings`` differ from the scenarios' default worker."""
    from steadfetch.chaos.scenarios import WorkerSettings

    def pairs(argv: list[str]) -> dict[str, str]:
        return dict(zip(argv[::2], argv[1::2], strict=False))

    base, mine = pairs(WorkerSettings().argv()), pairs(settings.argv())
    return [f"{k} {v}" for k, v in mine.items() if base.get(k) != v]
