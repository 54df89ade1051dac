"""``steadfetch run APP``: the production worker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from steadfetch.fetcher import RedisConnection, RetryPolicy
from steadfetch.worker.app import App, load_app
from steadfetch.worker.commands.common import add_redis_options
from steadfetch.worker.config import MODES, WorkerConfig
from steadfetch.worker.options import (
    non_negative_float,
    positive_float,
    positive_int,
    queue_list,
)
from steadfetch.worker.supervisor import process_count, run_supervised, supervise
from steadfetch.worker.worker import Worker

log = logging.getLogger("worker")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help="run a worker for APP (module:attr of a steadfetch.App)")
    p.add_argument("app", metavar="APP", help="import path of the App, e.g. myproject.jobs:app")
    _add_queue_options(p)
    _add_timeout_options(p)
    _add_retry_options(p)
    _add_liveness_options(p)
    _add_observability_options(p)
    _add_process_options(p)
    add_redis_options(p)
    p.set_defaults(func=run_command, parser=p)


def _add_queue_options(p: argparse.ArgumentParser) -> None:
    """What to run: the queues in priority order, how many jobs at once, how many held ahead, and
    the delivery guarantee."""
    p.add_argument(
        "--queues",
        type=queue_list,
        default=("default",),
        help="comma-separated queues in priority order",
    )
    p.add_argument("--concurrency", type=positive_int, default=50, help="jobs running at once")
    p.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="jobs held beyond free slots (default: adapts to the round trip to Redis, "
        "from 10%% of concurrency up to 10x concurrency)",
    )
    p.add_argument(
        "--mode",
        default="reliable",
        choices=MODES,
        help="reliable (at-least-once) or fast (at-most-once, like Resque)",
    )


def _add_timeout_options(p: argparse.ArgumentParser) -> None:
    """How long a job, a shutdown and an idle fetch may take."""
    p.add_argument(
        "--job-timeout",
        type=positive_float,
        default=300.0,
        help="default per-job timeout in seconds (a task may set its own)",
    )
    p.add_argument(
        "--grace-period",
        type=non_negative_float,
        default=30.0,
        help="seconds a shutdown may take: jobs finish, the rest goes back",
    )
    p.add_argument(
        "--block-timeout",
        type=positive_float,
        default=1.0,
        help="server-side block of an idle fetch (s)",
    )


def _add_retry_options(p: argparse.ArgumentParser) -> None:
    """What happens to a failing job: how often it runs again, and how long it waits between
    runs (a task may set its own)."""
    p.add_argument(
        "--max-attempts",
        type=positive_int,
        default=3,
        help="attempts of a failing job before it is dead-lettered, for jobs and tasks that "
        "set none",
    )
    p.add_argument(
        "--job-retry-base",
        type=positive_float,
        default=1.0,
        help="a failed job runs again after this many s, doubling per attempt (unless its task "
        "sets retry_base)",
    )
    p.add_argument(
        "--job-retry-cap",
        type=positive_float,
        default=300.0,
        help="longest wait before a failed job runs again (s; unless its task sets retry_cap)",
    )


def _add_liveness_options(p: argparse.ArgumentParser) -> None:
    """How this worker shows it is alive, finds dead workers' jobs and notices a stuck fetch."""
    p.add_argument(
        "--heartbeat-interval",
        type=positive_float,
        default=5.0,
        help="seconds between heartbeats (TTL: 3 beats + connect timeout + 2 read timeouts)",
    )
    p.add_argument(
        "--recovery-interval",
        type=positive_float,
        default=15.0,
        help="seconds between scans for dead workers' jobs",
    )
    p.add_argument(
        "--watchdog-timeout",
        type=non_negative_float,
        default=None,
        help="seconds a fetch may take before the watchdog resets the connection "
        "(default: block + read timeout + 5; 0 disables: unsafe)",
    )


def _add_observability_options(p: argparse.ArgumentParser) -> None:
    """How this worker is seen: metrics endpoint, worker id, live dashboard."""
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz and /readyz on this port",
    )
    p.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    p.add_argument("--worker-id", default=None, help="this worker's id (default host:pid:random)")
    p.add_argument("--live", action="store_true", help="show the live dashboard (needs a terminal)")
    p.add_argument(
        "--no-color", action="store_true", help="no colours in the dashboard (NO_COLOR works too)"
    )


def _add_process_options(p: argparse.ArgumentParser) -> None:
    """Several worker processes under a supervisor (and the hidden flags the supervisor passes to
    its children)."""
    p.add_argument(
        "--processes",
        type=process_count,
        default=None,
        metavar="N|auto",
        help="run N worker processes under a supervisor that restarts the ones that die "
        "('auto': one per usable core); worker ids ID-0..ID-(N-1); with --metrics-port P, "
        "process i serves on P+i",
    )
    p.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--supervisor-stderr-fd", type=int, default=None, help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    return WorkerConfig(
        app=args.app,
        queues=tuple(args.queues),
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        mode=args.mode,
        redis_url=args.redis_url,
        job_timeout=args.job_timeout,
        grace_period=args.grace_period,
        block_timeout=args.block_timeout,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        redis_retry_base=args.redis_retry_base,
        redis_retry_cap=args.redis_retry_cap,
        max_attempts=args.max_attempts,
        job_retry_base=args.job_retry_base,
        job_retry_cap=args.job_retry_cap,
        heartbeat_interval=args.heartbeat_interval,
        recovery_interval=args.recovery_interval,
        watchdog_timeout=args.watchdog_timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        worker_id=args.worker_id,
        durability=args.durability,
    )


def build_worker(app: App, config: WorkerConfig) -> Worker:
    conn = RedisConnection.from_url(
        config.redis_url,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        retry=RetryPolicy(base=config.redis_retry_base, cap=config.redis_retry_cap),
        name=config.worker_id,
        durability=config.durability,
    )
    return Worker(app, config, conn)


async def run_worker(
    worker: Worker,
    *,
    live: bool = False,
    no_color: bool = False,
    supervisor_pid: int | None = None,
    supervisor_stderr_fd: int | None = None,
) -> int:
    """Run ``worker``, inside the live dashboard when asked (lazy import: rich only then)."""
    dashboard: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if live:
        from steadfetch.worker.dashboard import LiveDashboard

        dashboard = LiveDashboard(worker.stats.snapshot, no_color=no_color)
    with dashboard:
        if supervisor_pid is not None:
            return await run_supervised(
                worker.run(), worker.shutdown, supervisor_pid, supervisor_stderr_fd
            )
        return await worker.run()


def run_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.processes is not None:
        return supervise(config, args.processes, sys.argv[1:])
    app = load_app(config.app)
    worker = build_worker(app, config)
    log.debug("configuration: %r", config)
    return asyncio.run(
        run_worker(
            worker,
            live=args.live,
            no_color=args.no_color,
            supervisor_pid=args.supervisor_pid,
            supervisor_stderr_fd=args.supervisor_stderr_fd,
        )
    )
