"""What several subcommands share: Redis connection flags and building the connection."""

from __future__ import annotations

import argparse

from steadfetch.fetcher import RedisConnection, RetryPolicy
from steadfetch.worker.config import DEFAULT_REDIS_URL, ConfigError
from steadfetch.worker.logs import LOG_FORMATS
from steadfetch.worker.options import add_alias, durability, non_negative_float, positive_float


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis to use (redis://, rediss://, unix://, redis+sentinel://)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=2.0,
        help="seconds to establish a connection",
    )
    parser.add_argument(
        "--read-timeout",
        type=non_negative_float,
        default=5.0,
        help="client read timeout in s (0 = none: unsafe, chaos proofs only)",
    )
    parser.add_argument(
        "--redis-retry-base",
        type=positive_float,
        default=0.1,
        help="first retry delay during a Redis outage (s)",
    )
    parser.add_argument(
        "--redis-retry-cap",
        type=positive_float,
        default=5.0,
        help="longest retry delay during a Redis outage (s)",
    )
    parser.add_argument(
        "--durability",
        type=durability,
        default=None,
        metavar="SPEC",
        help="confirm every enqueue and job settle with WAIT/WAITAOF before it counts: "
        "'replicas=N[,timeout=500ms]' or 'aof[,replicas=N][,timeout=1s]'; unconfirmed writes "
        "are retried as an outage (default: none, Redis's asynchronous replication)",
    )
    # The names before the job retries had theirs (issue 13): kept so scripts keep working.
    add_alias(parser, "--retry-base", "--redis-retry-base", type=positive_float)
    add_alias(parser, "--retry-cap", "--redis-retry-cap", type=positive_float)
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="log lines as text or one JSON object per line",
    )


def add_deadline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="give up when Redis stays unreachable this long (s)",
    )


def connect(
    args: argparse.Namespace, *, deadline: float | None = None, name: str | None = None
) -> RedisConnection:
    """The connection owner for this command (no I/O yet; bad URLs raise ConfigurationError)."""
    if args.redis_retry_base > args.redis_retry_cap:
        raise ConfigError("need --redis-retry-base <= --redis-retry-cap")
    return RedisConnection.from_url(
        args.redis_url,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        retry=RetryPolicy(base=args.redis_retry_base, cap=args.redis_retry_cap, deadline=deadline),
        name=name,
        durability=args.durability,
    )
