"""``steadfetch enqueue TASK [ARGS...]``: put one job on a queue (ARGS are parsed as JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from fetcher import JobSpec, Producer
from worker.commands.common import add_deadline_option, add_redis_options, connect
from worker.options import add_option, add_switch, positive_int


def json_value(text: str) -> Any:
    """``42`` → 42, ``'{"a": 1}'`` → dict, ``hello`` (not JSON) → the string ``"hello"``."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("enqueue", help="enqueue one job; prints its id")
    p.add_argument("task", metavar="TASK", help="task name as registered in the App")
    p.add_argument("args", metavar="ARGS", nargs="*", type=json_value,
                   help="positional arguments, each parsed as JSON (else a string)")  # fmt: skip
    p.add_argument("--kwargs", type=json_object, default={}, help="keyword arguments (JSON object)")
    add_option(p, "--queue", default="default", help="queue name")
    p.add_argument("--job-id", default=None, help="job id (default: a fresh unique id)")
    p.add_argument(
        "--delay", type=float, default=None, help="run no earlier than this many s from now"
    )
    add_option(
        p, "--max-attempts", type=positive_int, default=3, help="attempts before dead-letter"
    )
    add_switch(
        p, "--resque", help='write Resque format ({"class":..,"args":[..]}) to resque:queue:NAME'
    )
    add_deadline_option(p)
    add_redis_options(p)
    p.set_defaults(func=enqueue_command, parser=p)


async def enqueue(args: argparse.Namespace) -> str:
    conn = connect(args, deadline=args.timeout)
    try:
        spec = JobSpec(
            task=args.task,
            args=tuple(args.args),
            kwargs=args.kwargs,
            queue=args.queue,
            job_id=args.job_id,
            delay=args.delay,
            max_attempts=args.max_attempts,
            format="resque" if args.resque else "steadfetch",
        )
        (job_id,) = await Producer(conn, deadline=args.timeout).enqueue_many([spec])
        return job_id
    finally:
        await conn.close()


def enqueue_command(args: argparse.Namespace) -> int:
    print(asyncio.run(enqueue(args)))
    return 0
