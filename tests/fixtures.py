"""pytest fixtures for the real components (registered by ``tests/conftest.py``).

A missing component skips the test with the reason and the remedy, except under ``CI=true``,
where it fails: CI must exercise every component, never pass by skipping it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from steadfetch.chaos import IN_CI
from steadfetch.chaos.env.binaries import ComponentMissing
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.stack import Stack, selected_envs, start_stack
from steadfetch.chaos.env.toxiproxy import ToxiproxyServer

T = TypeVar("T")


def require(make: Callable[[], T]) -> T:
    """Call ``make``; turn ComponentMissing into a skip (a failure under CI=true)."""
    try:
        return make()
    except ComponentMissing as exc:
        if IN_CI:
            pytest.fail(f"CI=true and a required component is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port, killed after the test."""
    server = require(lambda: RedisServer().start())
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def toxiproxy_server() -> Iterator[ToxiproxyServer]:
    server = require(lambda: ToxiproxyServer().start())
    try:
        yield server
    finally:
        server.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that take ``stack`` run once per environment (``STEADFETCH_CHAOS_ENV`` narrows it)."""
    if "stack" in metafunc.fixturenames:
        envs = selected_envs()
        marks = {"docker": [pytest.mark.docker]}
        metafunc.parametrize(
            "stack",
            [pytest.param(env, id=env, marks=marks.get(env, [])) for env in envs],
            indirect=True,
        )


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Redis behind a Toxiproxy proxy in one environment; healed and torn down after the test."""
    env = request.param
    started = require(lambda: start_stack(env))
    try:
        yield started
    finally:
        try:
            started.heal()
        finally:
            started.close()
