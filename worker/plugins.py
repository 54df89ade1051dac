"""Subcommands contributed by other packages through the ``steadfetch.commands`` entry points.

Each entry point is ``register(subparsers) -> None``
(``chaos = "steadfetch.chaos.cli:register"``). worker
never imports those packages by name, so dependencies keep pointing chaos → worker.

A plugin whose dependencies are not installed (the chaos suite without ``steadfetch[chaos]``)
must not break the worker, nor greet every ``steadfetch run`` with a warning: its subcommand
stays listed, and using it prints one line saying what to install (exit 2). That holds whether
the import fails when the plugin loads or later, inside the command (chaos imports its heavy
modules lazily). A plugin that fails in any other way is logged and skipped.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from steadfetch.worker.config import ConfigError
from steadfetch.worker.options import parsers

log = logging.getLogger("worker.plugins")
GROUP = "steadfetch.commands"

Command = Callable[[argparse.Namespace], int]


class MissingExtra(ConfigError):
    """A plugin's subcommand needs a module that is not installed; the message says what to
    ``pip install``."""


def install_hint(entry: EntryPoint) -> str:
    """``pip install 'steadfetch[chaos]'``: the extra that entry point declares (else its
    name), of the distribution that declares it."""
    dist = entry.dist.name if entry.dist is not None else "steadfetch"
    extra = entry.extras[0] if entry.extras else entry.name
    return f"pip install '{dist}[{extra}]'"


def missing(entry: EntryPoint, exc: ImportError) -> MissingExtra:
    module = exc.name or str(exc)
    return MissingExtra(
        f"steadfetch {entry.name} needs {module!r}, which is not installed: {install_hint(entry)}"
    )


def guarded(entry: EntryPoint, func: Command) -> Command:
    """``func``, with a missing module turned into :class:`MissingExtra`."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ModuleNotFoundError as exc:
            raise missing(entry, exc) from exc

    return run


def add_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    entry: EntryPoint,
    exc: ImportError,
) -> None:
    """A stand-in subcommand that takes any arguments and says what to install."""
    problem = missing(entry, exc)

    def unavailable(args: argparse.Namespace) -> int:
        raise problem

    parser = subparsers.add_parser(
        entry.name, help=f"(not installed: {install_hint(entry)})", add_help=False
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=unavailable, parser=parser)


def load_plugins(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[str]:
    """Register every plugin that loads; return why the others were skipped (to be logged
    once logging is configured, so even JSON logs stay one object per line)."""
    skipped: list[str] = []
    for entry in entry_points(group=GROUP):
        before = set(subparsers.choices)
        try:
            register = entry.load()
            register(subparsers)
        except ImportError as exc:
            if entry.name not in subparsers.choices:
                add_unavailable(subparsers, entry, exc)
            continue
        except Exception as exc:  # noqa: BLE001  (any plugin failure: report it, keep the CLI)
            skipped.append(
                f"skipping subcommand plugin {entry.name!r} ({entry.value}): "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        for name in set(subparsers.choices) - before:
            for parser in parsers(subparsers.choices[name]):
                func = parser.get_default("func")
                if func is not None:
                    parser.set_defaults(func=guarded(entry, func))
    return skipped
