"""Command-line flags that can also come from ``STEADFETCH_<FLAG>`` environment variables.

``--redis-url`` is also ``STEADFETCH_REDIS_URL`` (the better place for a password: the command
line is visible in ``ps``). A flag on the command line wins over the environment, which wins
over the default. A malformed environment value is a usage error (exit 2) naming the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from fetcher.url import redact_url

ENV_PREFIX = "STEADFETCH_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_ENV_ERRORS = "_steadfetch_env_errors"


def env_name(flag: str) -> str:
    """``--redis-url`` → ``STEADFETCH_REDIS_URL``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def _errors(parser: argparse.ArgumentParser) -> list[str]:
    errors: list[str] = parser.__dict__.setdefault(_ENV_ERRORS, [])
    return errors


def _from_env(
    parser: argparse.ArgumentParser, flag: str, convert: Callable[[str], Any]
) -> tuple[str, Any]:
    """(variable name, converted value or None); a bad value is kept as a usage error."""
    name = env_name(flag)
    raw = os.environ.get(name)
    if raw is None:
        return name, None
    try:
        return name, convert(raw)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        _errors(parser).append(f"{name}={raw!r} is not valid for {flag}: {exc}")
        return name, None


def add_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    type: Callable[[str], Any] = str,
    default: Any = None,
    help: str,
    **kwargs: Any,
) -> None:
    """``parser.add_argument(flag, ...)`` with the default taken from the environment."""
    name, value = _from_env(parser, flag, type)
    choices = kwargs.get("choices")
    if value is not None and choices is not None and value not in choices:
        _errors(parser).append(f"{name}={value!r}: choose from {', '.join(map(str, choices))}")
    elif value is not None:
        default = value
    if default is None:
        shown = "none"
    elif isinstance(default, tuple):
        shown = ",".join(map(str, default))
    else:
        # A Redis URL from the environment may hold a password; "%" would be a format for argparse.
        shown = redact_url(str(default)).replace("%", "%%")
    parser.add_argument(
        flag, type=type, default=default, help=f"{help} [{name}; default {shown}]", **kwargs
    )


def switch_value(text: str) -> bool:
    """1/0, true/false, yes/no, on/off (any case)."""
    word = text.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError("use 1/0, true/false, yes/no or on/off")
    return word in _TRUE


def add_switch(parser: argparse.ArgumentParser, flag: str, *, help: str) -> None:
    """A boolean flag, also set by its environment variable (see :func:`switch_value`)."""
    name, value = _from_env(parser, flag, switch_value)
    parser.add_argument(flag, action="store_true", default=bool(value), help=f"{help} [{name}]")


def check_environment(parser: argparse.ArgumentParser) -> None:
    """Report malformed environment values as a usage error (exit 2)."""
    errors = _errors(parser)
    if errors:
        parser.error("; ".join(errors))


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def queue_list(text: str) -> tuple[str, ...]:
    queues = tuple(q.strip() for q in text.split(",") if q.strip())
    if not queues:
        raise argparse.ArgumentTypeError("needs at least one queue name")
    return queues
