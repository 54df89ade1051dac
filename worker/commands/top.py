"""``steadfetch top``: the cluster view, drawn by ``worker.dashboard`` (imported only here)."""

from __future__ import annotations

import argparse

from steadfetch.worker.config import DEFAULT_REDIS_URL
from steadfetch.worker.options import positive_float


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("top", help="live view of workers and queues")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis to watch")
    p.add_argument("--refresh", type=positive_float, default=1.0, help="seconds between refreshes")
    p.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR works too)")
    p.set_defaults(func=top_command, parser=p, log_format="text")


def top_command(args: argparse.Namespace) -> int:
    from steadfetch.worker.dashboard import run_top

    return run_top(args.redis_url, refresh=args.refresh, no_color=args.no_color)
