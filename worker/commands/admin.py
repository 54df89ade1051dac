"""``steadfetch status`` and ``steadfetch dead-letter list|retry|purge``: the operator's view."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fetcher import Admin
from worker.commands.common import add_deadline_option, add_redis_options, connect
from worker.options import positive_int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = subparsers.add_parser(
        "status", help="queues, processing, scheduled, dead-letter and live workers"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_deadline_option(status)
    add_redis_options(status)
    status.set_defaults(func=status_command, parser=status)

    dead = subparsers.add_parser("dead-letter", help="inspect, retry or purge dead-lettered jobs")
    actions = dead.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (
        ("list", "print dead-letter entries (JSON, one per line)"),
        ("retry", "requeue dead-lettered jobs with a fresh attempt count"),
        ("purge", "delete every dead-letter entry"),
    ):
        p = actions.add_parser(name, help=help_text)
        if name != "purge":
            p.add_argument("--limit", type=positive_int, default=100 if name == "list" else 1000)
        add_deadline_option(p)
        add_redis_options(p)
        p.set_defaults(func=dead_letter_command, parser=p)


def with_admin(args: argparse.Namespace, use: Callable[[Admin], Awaitable[Any]]) -> Any:
    """Run ``use(admin)`` on a fresh connection that gives up after ``--timeout`` of outage."""

    async def go() -> Any:
        conn = connect(args, deadline=args.timeout)
        try:
            return await use(Admin(conn, deadline=args.timeout))
        finally:
            await conn.close()

    return asyncio.run(go())


def format_status(status: dict[str, Any]) -> str:
    lines = ["queues:"]
    queues: dict[str, int] = status.get("queues", {})
    lines += [f"  {name:<30} {depth:>10}" for name, depth in queues.items()] or ["  (none)"]
    lines.append(f"scheduled: {status.get('scheduled', 0)}")
    lines.append(f"dead-letter: {status.get('dead', 0)}")
    processing: dict[str, int] = status.get("processing", {})
    lines.append("processing:" + ("" if processing else " (none)"))
    lines += [f"  {worker:<40} {count:>6}" for worker, count in processing.items()]
    workers: list[dict[str, Any]] = status.get("workers", [])
    lines.append(f"workers: {len(workers)}")
    for beat in workers:
        if beat.get("dead"):
            lines.append(f"  {beat.get('worker_id')}  DEAD (heartbeat expired)")
            continue
        lines.append(
            f"  {beat.get('worker_id')}  {beat.get('connection_state', '?')}  "
            f"in_flight={beat.get('in_flight', '?')} processed={beat.get('processed', '?')} "
            f"failed={beat.get('failed', '?')} jobs/s={beat.get('jobs_per_second', '?')}"
        )
    return "\n".join(lines)


def status_command(args: argparse.Namespace) -> int:
    status = with_admin(args, lambda admin: admin.status())
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return 0


def dead_letter_command(args: argparse.Namespace) -> int:
    if args.action == "list":
        entries = with_admin(args, lambda admin: admin.dead_letter_list(args.limit))
        for entry in entries:
            print(json.dumps(entry, default=str))
    elif args.action == "retry":
        report = with_admin(args, lambda admin: admin.dead_letter_retry(args.limit))
        print(f"requeued {report.requeued} dead-lettered job(s)")
        for refusal in report.refused:  # the cli engineer owns the final wording
            print(f"could not requeue {refusal.job_id or '?'}: {refusal.reason}")
    else:
        purged = with_admin(args, lambda admin: admin.dead_letter_purge())
        print(f"purged {purged} dead-letter entr{'y' if purged == 1 else 'ies'}")
    return 0
