"""Render the README's images: ``python -m tests.dashboard.screenshots docs/images``.

The live dashboard and ``top``, connected and in a Redis outage, from the realistic snapshots
in :mod:`tests.dashboard.samples`, exported with rich's ``save_svg``. Same renderers as the
real views, fixed clock, so the images only change when the rendering does.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, RenderableType
from rich.terminal_theme import MONOKAI

from steadfetch.worker.dashboard.render import top_view, worker_dashboard
from tests.dashboard import samples

NOW = samples.NOW


SHOTS: dict[str, tuple[str, int, Callable[[], RenderableType]]] = {
    "dashboard-connected.svg": (
        "steadfetch run --live",
        120,
        lambda: worker_dashboard(samples.heartbeat(), history=samples.THROUGHPUT[:45], now=NOW),
    ),
    "dashboard-outage.svg": (
        "steadfetch run --live (Redis down)",
        120,
        lambda: worker_dashboard(samples.outage_heartbeat(), history=samples.THROUGHPUT, now=NOW),
    ),
    "top-connected.svg": (
        "steadfetch top",
        100,
        lambda: top_view(samples.cluster(), samples.top_link(), now=NOW),
    ),
    "top-outage.svg": (
        "steadfetch top (Redis down)",
        100,
        lambda: top_view(samples.cluster(), samples.top_outage_link(), now=NOW),
    ),
}


def render_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (title, width, build) in SHOTS.items():
        console = Console(
            record=True,
            width=width,
            force_terminal=True,
            color_system="truecolor",
            file=io.StringIO(),  # record only
        )
        console.print(build())
        path = directory / name
        console.save_svg(str(path), title=title, theme=MONOKAI)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tests.dashboard.screenshots DIRECTORY", file=sys.stderr)
        return 2
    for path in render_all(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
