"""Subcommands contributed by other packages through the ``steadfetch.commands`` entry points.

Each entry point is ``register(subparsers) -> None`` (``chaos = "chaos.cli:register"``). worker
never imports those packages by name, so dependencies keep pointing chaos → worker. A plugin that
fails to import or register is logged and skipped: a broken extra must not break the worker.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

log = logging.getLogger("worker.plugins")
GROUP = "steadfetch.commands"


def load_plugins(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[str]:
    """Register every plugin that loads; return the names of those that did."""
    loaded: list[str] = []
    for entry in entry_points(group=GROUP):
        try:
            register = entry.load()
            register(subparsers)
        except Exception as exc:  # noqa: BLE001  (any plugin failure: log it, keep the CLI)
            # Logging is not configured yet while parsing; stderr always reaches the user.
            print(
                f"steadfetch: skipping subcommand plugin {entry.name!r} ({entry.value}): "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            continue
        loaded.append(entry.name)
    return loaded
