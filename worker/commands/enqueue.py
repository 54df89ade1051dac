"""``steadfetch enqueue TASK [ARGS...]``: put one job on a queue (ARGS are parsed as JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from steadfetch.fetcher import EnqueuedId, JobSpec, Producer
from steadfetch.fetcher.keys import RESQUE_NAME_PREFIX
from steadfetch.worker.commands.common import add_deadline_option, add_redis_options, connect
from steadfetch.worker.config import ConfigError
from steadfetch.worker.options import non_negative_float, positive_float, positive_int, queue_name


def _no_constant(name: str) -> Any:
    raise argparse.ArgumentTypeError(
        f"{name} is not JSON (a job's arguments must survive JSON); for the string, quote it: "
        f"'\"{name}\"'"
    )


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant)


def json_value(text: str) -> Any:
    """``42`` → 42, ``'{"a": 1}'`` → dict, ``hello`` (not JSON) → the string ``"hello"``;
    ``NaN``/``Infinity`` (Python's extensions, not JSON) are refused."""
    try:
        return _loads(text)
    except ValueError:
        return text


def json_object(text: str) -> dict[str, Any]:
    try:
        value = _loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "enqueue",
        help="enqueue one job; prints its id",
        description="Enqueue one job and print its id. A queue named resque:NAME is Resque's "
        'list resque:queue:NAME and gets Resque payloads ({"class": TASK, "args": [...]}), '
        "with or without --resque.",
    )
    p.add_argument("task", metavar="TASK", help="task name as registered in the App")
    p.add_argument(
        "args",
        metavar="ARGS",
        nargs="*",
        type=json_value,
        help="positional arguments, each parsed as JSON (else a string)",
    )
    p.add_argument("--kwargs", type=json_object, default={}, help="keyword arguments (JSON object)")
    p.add_argument(
        "--queue",
        default="default",
        type=queue_name,
        help="queue name (resque:NAME: a Resque queue)",
    )
    p.add_argument("--job-id", default=None, help="job id (default: a fresh unique id)")
    p.add_argument(
        "--delay",
        type=non_negative_float,
        default=None,
        help="run no earlier than this many s from now (a steadfetch worker releases "
        "delayed jobs, also Resque ones)",
    )
    p.add_argument(
        "--max-attempts",
        type=positive_int,
        default=None,
        help="attempts before dead-letter (default: the task's max_attempts, else the "
        "worker's --max-attempts)",
    )
    p.add_argument(
        "--job-retry-base",
        type=positive_float,
        default=None,
        help="this job's first retry wait, doubling per attempt (default: the task's, else the "
        "worker's)",
    )
    p.add_argument(
        "--job-retry-cap",
        type=positive_float,
        default=None,
        help="this job's longest retry wait (default: the task's, else the worker's)",
    )
    p.add_argument(
        "--unique-for",
        type=non_negative_float,
        default=None,
        metavar="SECONDS",
        help="reserve the job id while the job is queued, scheduled or running and this many s "
        "after it finished: an enqueue of a reserved id writes nothing and says 'duplicate'",
    )
    p.add_argument(
        "--resque",
        action="store_true",
        help='Resque format ({"class":..,"args":[..]}) in resque:queue:NAME',
    )
    add_deadline_option(p)
    add_redis_options(p)
    p.set_defaults(func=enqueue_command, parser=p)


def job_spec(args: argparse.Namespace) -> JobSpec:
    """The job the flags describe; a combination that cannot be written is a usage error."""
    resque = args.resque or args.queue.startswith(RESQUE_NAME_PREFIX)
    if resque and args.kwargs:
        raise ConfigError(
            "Resque jobs carry positional arguments only: drop --kwargs, or use a steadfetch "
            f"queue (not {RESQUE_NAME_PREFIX}NAME) without --resque"
        )
    return JobSpec(
        task=args.task,
        args=tuple(args.args),
        kwargs=args.kwargs,
        queue=args.queue,
        job_id=args.job_id,
        delay=args.delay,
        max_attempts=args.max_attempts,
        format="resque" if resque else "steadfetch",
        retry_base=args.job_retry_base,
        retry_cap=args.job_retry_cap,
        unique_for=args.unique_for,
    )


async def enqueue(args: argparse.Namespace) -> EnqueuedId:
    spec = job_spec(args)
    conn = connect(args, deadline=args.timeout)
    try:
        (job_id,) = await Producer(conn, deadline=args.timeout).enqueue_many([spec])
        return job_id
    except ValueError as exc:  # the producer refused the job before sending anything
        raise ConfigError(str(exc)) from exc
    finally:
        await conn.close()


def enqueue_command(args: argparse.Namespace) -> int:
    job_id = asyncio.run(enqueue(args))
    try:
        print(job_id, flush=True)  # stdout: the id alone, as before, for scripts
    except OSError as exc:
        # The job IS enqueued: a traceback and "unexpected error" made a script enqueue again.
        print(
            f"job {job_id} was enqueued, but its id could not be written to stdout: "
            f"{exc.strerror or exc} (do not enqueue it again)",
            file=sys.stderr,
        )
        return 1
    if job_id.duplicate:
        print(
            f"duplicate: job {job_id} is already queued, scheduled, running or finished within "
            "its --unique-for window; nothing was written",
            file=sys.stderr,
        )
    return 0
