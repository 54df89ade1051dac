"""Every flag of every subcommand, set through its ``STEADFETCH_<FLAG>`` variable.

The list of flags is read from the real parser (plugins included), so a flag added tomorrow is
tested tomorrow: a flag whose type has no sample below fails the test until it gets one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.worker.cli import build_parser
from steadfetch.worker.options import ENV_PREFIX, Switch, environment_of, parsers
from tests.worker.harness import clean_env, run_cli

#: A value for each flag type, different from every default (the env must visibly take effect).
SAMPLES: dict[str, str] = {
    "str": "sample-text",
    "int": "7",
    "float": "2.5",
    "positive_int": "7",
    "positive_float": "2.5",
    "non_negative_float": "2.5",
    "queue_list": "alpha,beta",
    "queue_name": "alpha",
    "json_object": '{"k": 1}',
    "Path": "sample-path",
    "process_count": "3",
    "durability": "replicas=1,timeout=250ms",
}


def sample(action: argparse.Action) -> str:
    if action.choices is not None:
        others = [c for c in action.choices if c != action.default]
        return str(others[0])
    kind = getattr(action.type, "__name__", "str") if action.type is not None else "str"
    assert kind in SAMPLES, f"{action.option_strings}: add a sample value for type {kind}"
    return SAMPLES[kind]


def command_path(parser: argparse.ArgumentParser) -> list[str]:
    """``steadfetch dead-letter retry`` → ``["dead-letter", "retry"]`` plus its positionals."""
    words = parser.prog.split()[1:]
    positionals = [
        a for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        and a.nargs in (None, 1)
    ]  # fmt: skip
    return words + ["m:x" for _ in positionals]


def every_flag() -> Iterator[tuple[list[str], str, argparse.Action]]:
    parser, _skipped = build_parser()
    for sub in parsers(parser):
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            continue  # a parser that only dispatches
        for name, action in environment_of(sub).items():
            yield command_path(sub), name, action


FLAGS = list(every_flag())


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def parse(argv: list[str]) -> argparse.Namespace:
    parser, _skipped = build_parser()
    return parser.parse_args(argv)


def test_the_list_covers_the_flags_the_issue_found_missing() -> None:
    names = {name for _, name, _ in FLAGS}
    for flag in ("DELAY", "JOB_ID", "KWARGS", "JSON", "LIMIT", "REDIS_URL", "LIVE", "NO_COLOR"):
        assert ENV_PREFIX + flag in names
    assert len(FLAGS) > 60


@pytest.mark.parametrize(
    ("argv", "name", "action"), FLAGS, ids=[f"{' '.join(a[:2])}:{n}" for a, n, _ in FLAGS]
)
def test_every_flag_is_settable_from_the_environment(
    argv: list[str], name: str, action: argparse.Action, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = action.option_strings[0]
    assert name == ENV_PREFIX + flag[2:].upper().replace("-", "_")
    if isinstance(action, Switch):
        off = action.option_strings[1]
        monkeypatch.setenv(name, "1")
        assert getattr(parse(argv), action.dest) is True
        assert getattr(parse([*argv, off]), action.dest) is False  # the command line turns it off
        monkeypatch.setenv(name, "0")
        assert getattr(parse(argv), action.dest) is False
        assert getattr(parse([*argv, flag]), action.dest) is True
        return
    value = sample(action)
    wanted = getattr(parse([*argv, f"{flag}={value}"]), action.dest)
    monkeypatch.setenv(name, value)
    from_env: Any = getattr(parse(argv), action.dest)
    assert from_env == wanted
    assert from_env != action.default or action.default is argparse.SUPPRESS
    # The command line wins over the environment.
    assert getattr(parse([*argv, f"{flag}={value}"]), action.dest) == wanted


def steadfetch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=clean_env(**env))


def test_through_the_binary_delay_from_the_environment_delays_and_a_switch_turns_off(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """STEADFETCH_DELAY used to be ignored silently: the job ran at once."""
    url = redis_server.url
    done = steadfetch("enqueue", "work", "x", STEADFETCH_REDIS_URL=url, STEADFETCH_DELAY="60")
    assert done.returncode == 0, done.stderr
    with redis.Redis(port=redis_server.port) as oracle:
        assert oracle.llen("steadfetch:queue:default") == 0
        assert oracle.zcard("steadfetch:scheduled") == 1
    as_json = steadfetch("status", STEADFETCH_REDIS_URL=url, STEADFETCH_JSON="yes")
    assert json.loads(as_json.stdout)["scheduled"] == 1
    as_text = steadfetch("status", "--no-json", STEADFETCH_REDIS_URL=url, STEADFETCH_JSON="yes")
    assert as_text.stdout.startswith("queues:"), as_text.stdout
    bad = steadfetch("status", STEADFETCH_REDIS_URL=url, STEADFETCH_JSON="maybe")
    assert bad.returncode == 2
    assert "STEADFETCH_JSON" in bad.stderr
