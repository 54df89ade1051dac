"""The ``steadfetch`` argument parser: every ``--flag`` is also ``STEADFETCH_<FLAG>``.

Built on ConfigArgParse (argparse plus ``env_var=``), so subcommand plugins keep receiving plain
argparse sub-parsers. :class:`Parser` gives every long option it is handed, in every subcommand
(plugins included), the environment variable ``STEADFETCH_<FLAG>`` (``--redis-url`` →
``STEADFETCH_REDIS_URL``, the better place for a password: the command line shows in ``ps``),
so a new flag cannot be left out. A flag on the command line wins over the environment, which
wins over the default. Switches come in pairs (``--live``/``--no-live``, ``--no-color``/
``--color``): one set in the environment can be turned off on the command line. A malformed
environment value is a usage error (exit 2) naming the variable.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import configargparse

from steadfetch.fetcher.durability import Durability, parse_durability
from steadfetch.fetcher.url import redact_url

ENV_PREFIX = "STEADFETCH_"
#: Where ConfigArgParse records the environment values it used (its own key).
_ENV_SOURCE = "environment_variables"


def _shown(value: str) -> str:
    """``value`` for --help: passwords redacted, ``%`` escaped for argparse."""
    return redact_url(value).replace("%", "%%")


def _may_hold_password(text: str) -> bool:
    # Whatever the one redaction would change: a password parameter in any case or with a
    # percent-encoded name (both parsed as one) is no "password=" to a plain search.
    return redact_url(text) != text


def redact_words(message: str) -> str:
    """``message`` with each word that may hold a Redis password redacted: argparse and the
    command's one error line quote what they refuse (a Redis URL given as APP, say)."""
    return " ".join(redact_url(w) if _may_hold_password(w) else w for w in message.split(" "))


def env_name(flag: str) -> str:
    """``--redis-url`` → ``STEADFETCH_REDIS_URL``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


class Switch(argparse.BooleanOptionalAction):
    """An on/off pair: ``--live`` and ``--no-live``; for a flag named ``--no-x``, ``--x`` is
    its off side. ConfigArgParse maps ``STEADFETCH_<FLAG>=1/true/yes/on`` to the first and
    ``0/false/no/off`` to the second (it handles BooleanOptionalAction so)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: Any = False,
        required: bool = False,
        help: str | None = None,
    ) -> None:
        on = option_strings[0]
        off = "--" + on.removeprefix("--no-") if on.startswith("--no-") else "--no-" + on[2:]
        argparse.Action.__init__(
            self, [on, off], dest, nargs=0, default=default, required=required, help=help
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, option_string == self.option_strings[0])


class Parser(configargparse.ArgumentParser):  # type: ignore[misc]  # (untyped library)
    """An ArgumentParser whose long options are all settable from the environment.

    Sub-parsers are of this class too (argparse makes them ``type(parent)``), so subcommands
    that plugins register inherit the rule without knowing about it. ``action="store_true"``
    becomes a :class:`Switch`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_config_file_help", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("action") == "store_true":
            kwargs["action"] = Switch
        flags = [a for a in args if isinstance(a, str) and a.startswith("--")]
        if flags and "env_var" not in kwargs and kwargs.get("action") not in ("help", "version"):
            kwargs["env_var"] = env_name(flags[0])
        default = kwargs.get("default")
        help_text = kwargs.get("help")
        name = kwargs.get("env_var")
        if help_text and help_text is not argparse.SUPPRESS:
            # Say what applies now, and why. A Redis URL may hold a password: never print one.
            if name is not None and name in os.environ:
                note = f"set to {_shown(os.environ[name])} by {name}"
            elif default not in (None, False, argparse.SUPPRESS):
                text = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
                note = f"default: {_shown(text)}"
            else:
                note = ""
            kwargs["help"] = f"{help_text} ({note})" if note else help_text
        action: argparse.Action = super().add_argument(*args, **kwargs)
        return action

    def parse_known_args(self, args: Sequence[str] | None = None, *rest: Any, **kw: Any) -> Any:
        """As argparse's; keeps the arguments so :meth:`error` can redact what it quotes."""
        self._argv_seen = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, *rest, **kw)

    def error(self, message: str) -> NoReturn:
        """Name the environment variable when its value is what argparse refused."""
        settings = getattr(self, "_source_to_settings", {}).get(_ENV_SOURCE, {})
        for name, (action, value) in settings.items():
            if any(f"argument {flag}" in message for flag in action.option_strings):
                message = f"{message} (from the environment: {name}={redact_url(value)!r})"
                break
        # argparse quotes the arguments it refuses ("unrecognized arguments: redis://:pw@h"):
        # any argument (then any word) that may hold a Redis password is shown redacted.
        for arg in getattr(self, "_argv_seen", ()):
            if _may_hold_password(arg):
                message = message.replace(arg, redact_url(arg))
        super().error(redact_words(message))
        raise AssertionError("unreachable: ArgumentParser.error exits")


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-parser below it (for tests and docs that go through all flags)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) not in seen:  # aliases map several names to one parser
                    seen.add(id(sub))
                    yield from parsers(sub)


def environment_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``{STEADFETCH_X: action}`` for the flags of one parser (not its sub-parsers)."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        name = getattr(action, "env_var", None)
        if name is not None:
            found[name] = action
    return found


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    """A number of seconds: ``nan`` and ``inf`` are refused (a NaN delay never comes due)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def durability(text: str) -> Durability:
    """``--durability replicas=1,timeout=500ms`` or ``aof`` (fetcher.durability)."""
    try:
        return parse_durability(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def queue_list(text: str) -> tuple[str, ...]:
    queues = tuple(q.strip() for q in text.split(",") if q.strip())
    if not queues:
        raise argparse.ArgumentTypeError("needs at least one queue name")
    repeated = sorted({q for q in queues if queues.count(q) > 1})
    if repeated:
        # the fetcher refuses them too (a ValueError there was a traceback and exit 1)
        raise argparse.ArgumentTypeError(f"queue {', '.join(repeated)} named more than once")
    return queues


def queue_name(text: str) -> str:
    """One queue name that ``--queues`` can name too: a job enqueued under a name no worker
    can be told to consume (``a,b``, `` a``) would wait forever."""
    if not text.strip() or queue_list(text) != (text,):
        raise argparse.ArgumentTypeError(
            f"{text!r} is no name a worker's --queues can take (no commas, no spaces around it)"
        )
    return text


class Deprecated(argparse.Action):
    """An old flag that still works as another's alias and says so (the CLI logs
    ``namespace.deprecations`` once logging is configured)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.replacement: str = kwargs.pop("replacement")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        notes: list[str] = getattr(namespace, "deprecations", [])
        notes.append(f"{option_string} is deprecated: use {self.replacement}")
        namespace.deprecations = notes


def add_alias(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Keep ``old`` working as a deprecated spelling of ``new`` (hidden from --help)."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(
        old, dest=dest, action=Deprecated, replacement=new,
        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs,
    )  # fmt: skip
