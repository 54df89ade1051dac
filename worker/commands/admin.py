"""``steadfetch status`` and ``steadfetch dead-letter list|retry|purge``: the operator's view."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from steadfetch.fetcher import Admin
from steadfetch.fetcher.admin import DeadLetterRetry
from steadfetch.worker.commands.common import add_deadline_option, add_redis_options, connect
from steadfetch.worker.config import ConfigError
from steadfetch.worker.options import positive_int


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
    listing = actions.add_parser("list", help="print dead-letter entries (JSON, one per line)")
    listing.add_argument("--limit", type=positive_int, default=100, help="entries to print")
    retry = actions.add_parser(
        "retry",
        help="requeue dead-lettered jobs with a fresh attempt count",
        description="Requeue the oldest --limit dead-lettered jobs, or every entry of JOB_ID, "
        "with a fresh attempt count. Entries that cannot be requeued stay in the list, and each "
        "is printed with the reason; the exit code is then 1.",
    )
    retry.add_argument("job_id", metavar="JOB_ID", nargs="?", help="requeue only this job")
    retry.add_argument("--limit", type=positive_int, default=1000, help="entries to examine")
    purge = actions.add_parser(
        "purge",
        help="delete every dead-letter entry",
        description="Delete every dead-letter entry. On a terminal it asks first; elsewhere "
        "it needs --yes.",
    )
    purge.add_argument("--yes", action="store_true", help="do not ask: delete them")
    for p in (listing, retry, purge):
        add_deadline_option(p)
        add_redis_options(p)
        p.set_defaults(parser=p)
    listing.set_defaults(func=list_command)
    retry.set_defaults(func=retry_command)
    purge.set_defaults(func=purge_command)


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
            f"failed={beat.get('failed', '?')} jobs/s={beat.get('jobs_per_second', '?')} "
            f"recovered_jobs={beat.get('recovered_jobs', '?')} "
            f"presumed_dead={beat.get('presumed_dead', '?')} "
            f"late_settles={beat.get('late_settles', '?')} "
            f"failovers={beat.get('failovers', '?')} primary={beat.get('primary') or '?'}"
        )
    eviction: dict[str, Any] = status.get("eviction_policy") or {}
    if eviction:
        shown = eviction.get("policy") or "unknown"
        note = "" if eviction.get("safe") else f"  WARNING: {eviction.get('note')}"
        lines.append(f"redis maxmemory-policy: {shown}{note}")
    return "\n".join(lines)


def status_command(args: argparse.Namespace) -> int:
    status = with_admin(args, lambda admin: admin.status())
    print(json.dumps(status, indent=2, default=str) if args.json else format_status(status))
    return 0


def list_command(args: argparse.Namespace) -> int:
    entries = with_admin(args, lambda admin: admin.dead_letter_list(args.limit))
    for entry in entries:
        print(json.dumps(entry, default=str))
    return 0


def retry_command(args: argparse.Namespace) -> int:
    """Say what went back and, for each entry that stayed, why; exit 1 when one stayed or
    JOB_ID matched nothing."""
    report: DeadLetterRetry = with_admin(
        args, lambda admin: admin.dead_letter_retry(args.limit, job_id=args.job_id)
    )
    if args.job_id is not None and not report.requeued and not report.refused:
        print(f"no dead-letter entry for job {args.job_id}", file=sys.stderr)
        return 1
    print(f"requeued {report.requeued} dead-lettered job(s)")
    if not report.refused:
        return 0
    print(
        f"{len(report.refused)} entr{'y' if len(report.refused) == 1 else 'ies'} could not be "
        "requeued and stay in the dead-letter list:",
        file=sys.stderr,
    )
    for refusal in report.refused:
        job = f"job {refusal.job_id}" if refusal.job_id else "an entry"
        where = f" (queue {refusal.queue})" if refusal.queue else ""
        print(f"  {job}{where}: {refusal.reason}", file=sys.stderr)
    return 1


def purge_command(args: argparse.Namespace) -> int:
    """Delete the dead-letter list: after a yes on a terminal, or with --yes."""
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("purge deletes every dead-letter entry: pass --yes to confirm")
        count = with_admin(args, lambda admin: admin.status())["dead"]
        answer = input(f"delete {count} dead-letter entr{'y' if count == 1 else 'ies'}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    purged = with_admin(args, lambda admin: admin.dead_letter_purge())
    print(f"purged {purged} dead-letter entr{'y' if purged == 1 else 'ies'}")
    return 0
