"""Subcommands contributed by other packages through the ``steadfetch.commands`` entry points.

Each entry point is ``register(subparsers) -> None`` (``chaos = "chaos.cli:register"``). worker
never imports those packages by name, so dependencies keep pointing chaos → worker. A plugin that
fails to import or register is logged and skipped: a broken extra must not break the worker.
"""

from __future__ import annotations

import argparse
import logging
from importlib.metadata import entry_points

log = logging.getLogger("worker.plugins")
GROUP = "steadfetch.commands"


def load_plugins(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[str]:
    """Register every plugin that loads; return why the others were skipped (to be logged
    once logging is configured, so even JSON logs stay one object per line)."""
    skipped: list[str] = []
    for entry in entry_points(group=GROUP):
        try:
            register = entry.load()
            register(subparsers)
        except Exception as exc:  # noqa: BLE001  (any plugin failure: report it, keep the CLI)
            skipped.append(
                f"skipping subcommand plugin {entry.name!r} ({entry.value}): "
                f"{type(exc).__name__}: {exc}"
            )
    return skipped
