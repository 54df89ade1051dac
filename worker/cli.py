"""The ``steadfetch`` binary: parse, set up logging, dispatch to a subcommand, map errors to exits.

Exit codes (docs/CONTRACTS.md): 0 after a graceful stop; 1 on an unexpected error (the
traceback is logged); 2 on bad usage or configuration — a bad flag, a bad APP path, a wrong
password or bad URL (the message says what to fix); 128+signum after a second signal.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
from collections.abc import Sequence
from typing import TypeVar

from steadfetch.fetcher.errors import ConfigurationError, RedisUnavailable
from steadfetch.worker import __version__
from steadfetch.worker.app import AppLoadError
from steadfetch.worker.commands import admin, demo, enqueue, run, top
from steadfetch.worker.config import ConfigError
from steadfetch.worker.logs import configure_logging
from steadfetch.worker.options import Parser, redact_words
from steadfetch.worker.plugins import load_plugins
from steadfetch.worker.shutdown import ignore_user_signals
from steadfetch.worker.threads import SyncRunner

log = logging.getLogger("worker.cli")
E = TypeVar("E", bound=BaseException)

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser() -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser, and why any plugin subcommand was skipped."""
    parser = Parser(
        prog="steadfetch",
        description="A Redis job worker that does not lock up, leak or lose jobs.",
        epilog="Every flag of every command can also be set as STEADFETCH_<FLAG>, e.g. "
        "STEADFETCH_REDIS_URL; a switch as STEADFETCH_LIVE=1 or 0, and --no-live on the "
        "command line turns it off again.",
    )
    parser.add_argument("--version", action="version", version=f"steadfetch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, enqueue, admin, top, demo):
        module.register(subparsers)
    skipped = load_plugins(subparsers)
    return parser, skipped


def find_errors(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` inside ``exc`` (which may be an ExceptionGroup from a TaskGroup)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_errors(inner, kind)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (the console script exits with it)."""
    code = run_cli(argv)
    if SyncRunner.abandoned():
        # A timed-out or interrupted sync handler still holds a thread that may never return;
        # interpreter shutdown would wait for it forever. Flush everything and leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def run_cli(argv: Sequence[str] | None = None) -> int:
    ignore_user_signals()  # before any line: a supervisor passes SIGUSR1 on once we speak
    parser, skipped_plugins = build_parser()
    args = parser.parse_args(argv)
    command_parser: argparse.ArgumentParser = getattr(args, "parser", parser)
    configure_logging(getattr(args, "log_format", "text"))
    for reason in skipped_plugins:
        log.warning("%s", reason)
    for note in getattr(args, "deprecations", ()):
        log.warning("%s", note)
    try:
        code: int = args.func(args)
    except (ConfigError, AppLoadError) as exc:
        # The one line that matters: a usage dump would bury it (the flags were fine).
        for handler in logging.getLogger().handlers:
            handler.flush()  # lines logged before it come before it
        print(f"{command_parser.prog}: error: {redact_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 128 + 2
    except BrokenPipeError as exc:
        if not stdout_reader_gone():
            return report(exc)
        # `steadfetch status | head`: the reader took what it wanted, as a C tool would end
        # (killed by SIGPIPE), quietly; stdout goes to /dev/null so the exit flush is quiet too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except BaseException as exc:  # noqa: BLE001  (mapped to an exit code, nothing swallowed)
        return report(exc)
    return code


def stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (poll says POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no stdout at all, or not a file descriptor
        return False


def report(exc: BaseException) -> int:
    """Log why the command ended and choose the exit code."""
    config = find_errors(exc, ConfigurationError) or find_errors(exc, ConfigError)
    if config is not None:
        log.error("cannot continue: %s", config)
        return EXIT_USAGE
    unavailable = find_errors(exc, RedisUnavailable)
    if unavailable is not None:
        log.error("%s", unavailable)
        return EXIT_ERROR
    if isinstance(exc, SystemExit):
        raise exc
    log.critical("unexpected error, exiting", exc_info=exc)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
