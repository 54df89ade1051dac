"""Pure logic, no Redis: the window's bounds, the registry, options, redaction, formats."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from steadfetch.worker.app import App, AppLoadError, load_app
from steadfetch.worker.config import ConfigError, WorkerConfig, redact_url
from steadfetch.worker.logs import JsonFormatter, TextFormatter
from steadfetch.worker.options import Parser
from steadfetch.worker.stats import WorkerStats, percentile
from steadfetch.worker.window import JobWindow


async def test_window_hands_jobs_to_idle_runners_and_counts_free_capacity() -> None:
    window: JobWindow[str] = JobWindow(2, prefetch=1)
    assert window.free() == 3
    takers = [asyncio.ensure_future(window.take()) for _ in range(2)]
    await asyncio.sleep(0)
    window.put(["a", "b", "c"])
    assert sorted(await asyncio.gather(*takers)) == ["a", "b"]  # type: ignore[type-var]
    assert (window.running, window.buffered, window.free()) == (2, 1, 0)
    wait = asyncio.ensure_future(window.wait_for_space())
    await asyncio.sleep(0)
    assert not wait.done()  # full: the fetch loop waits instead of over-fetching
    window.release()
    assert await wait == 1
    assert await window.take() == "c"
    window.close()
    assert await window.take() is None
    assert window.drain() == []


async def test_window_close_releases_idle_runners_and_keeps_unstarted_jobs() -> None:
    window: JobWindow[str] = JobWindow(1, prefetch=2)
    idle = asyncio.ensure_future(window.take())
    await asyncio.sleep(0)
    window.put(["x", "y"])
    assert await idle == "x"
    window.close()
    assert await window.take() is None  # buffered jobs never start after close
    assert window.drain() == ["y"]


def test_app_registers_async_and_sync_handlers_and_checks_arguments() -> None:
    app = App()

    @app.task(timeout=3)
    async def a(x: int, y: int = 2) -> None: ...

    @app.task
    def b(*args: int, **kwargs: int) -> None: ...

    assert app.get("a") is not None and app.get("a").is_async and app.get("a").timeout == 3  # type: ignore[union-attr]
    assert not app.get("b").is_async  # type: ignore[union-attr]
    assert app.get("a").check_arguments([1], {}) is None  # type: ignore[union-attr]
    reason = app.get("a").check_arguments([1, 2, 3], {})  # type: ignore[union-attr]
    assert reason == "arguments do not fit a(x, y=2): too many positional arguments"
    with pytest.raises(ValueError, match="already registered"):
        app.register(a)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        app.register(b, name="c", timeout=0)


def test_load_app_errors_say_what_is_wrong() -> None:
    assert isinstance(load_app("steadfetch.worker.demo:app"), App)
    with pytest.raises(AppLoadError, match="has no attribute 'nope'"):
        load_app("steadfetch.worker.demo:nope")


def test_passwords_never_show_in_config_repr() -> None:
    config = WorkerConfig(app="m:a", redis_url="redis://user:s3cret@host:6379/0")
    assert "s3cret" not in repr(config)
    assert "redis://user:***@host:6379/0" in repr(config)
    assert redact_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact_url("unix:///r.sock?db=1&password=pw") == "unix:///r.sock?db=1&password=***"
    assert redact_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"
    with pytest.raises(ConfigError, match="--redis-retry-base"):
        WorkerConfig(app="m:a", redis_retry_base=10, redis_retry_cap=1)


def test_environment_defaults_and_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEADFETCH_CONCURRENCY", "12")
    parser = Parser()
    parser.add_argument("--concurrency", type=int, default=50, help="n")
    parser.add_argument("--mode", default="reliable", choices=("reliable", "fast"), help="m")
    parser.add_argument("--live", action="store_true", help="l")
    assert parser.parse_args([]).concurrency == 12
    assert parser.parse_args(["--concurrency", "3"]).concurrency == 3
    monkeypatch.setenv("STEADFETCH_LIVE", "yes")
    assert parser.parse_args([]).live is True
    assert parser.parse_args(["--no-live"]).live is False
    monkeypatch.setenv("STEADFETCH_MODE", "sometimes")
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "(from the environment: STEADFETCH_MODE='sometimes')" in capsys.readouterr().err


def test_stats_percentiles_and_counter_line() -> None:
    stats = WorkerStats()
    for ms in range(1, 101):
        stats.record_duration(ms / 1000)
    p50, p99 = stats.latency_ms()
    assert (round(p50), round(p99)) == (51, 99)
    assert percentile([], 0.5) == 0.0
    stats.processed = 3
    assert stats.counter_line() == "processed=3 failed=0 retried=0 dead_lettered=0 requeued=0"
    assert stats.snapshot()["rss_bytes"] > 0


def test_log_formats() -> None:
    record = logging.makeLogRecord(
        {"name": "worker", "levelname": "ERROR", "msg": "job %s failed", "args": ("j1",),
         "task": "t", "created": 0.5}
    )  # fmt: skip
    assert TextFormatter().format(record) == "1970-01-01T00:00:00.500Z ERROR worker: job j1 failed"
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {"ts": "1970-01-01T00:00:00.500Z", "level": "ERROR", "logger": "worker",
                     "message": "job j1 failed", "task": "t"}  # fmt: skip


def test_help_never_shows_a_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADFETCH_REDIS_URL", "redis://:topsecret@h:1/0")
    parser = Parser()
    parser.add_argument("--redis-url", default="redis://:default-pw@127.0.0.1:6379/0", help="url")
    assert parser.parse_args([]).redis_url == "redis://:topsecret@h:1/0"
    assert "topsecret" not in parser.format_help()
    assert "default-pw" not in parser.format_help()
    assert "set to redis://:***@h:1/0 by STEADFETCH_REDIS_URL" in " ".join(
        parser.format_help().split()
    )
    assert "SUPPRESS" not in parser.format_help()


def test_the_positional_fast_path_agrees_with_signature_bind() -> None:
    """check_arguments decides positional-only calls from a precomputed range: the same
    verdict as Signature.bind for every shape of parameters and every count."""

    def plain(a: int, b: int, c: int = 0, d: int = 1) -> None: ...
    def star(a: int, *rest: int) -> None: ...
    def kw_default(a: int, *, k: int = 0) -> None: ...
    def kw_required(a: int, *, k: int) -> None: ...
    def only(a: int, b: int = 0, /) -> None: ...
    def anything(*args: int, **kwargs: int) -> None: ...
    def mutable_default(a: list[int] = []) -> None: ...  # noqa: B006  (unhashable default)

    app = App("shapes")
    handlers = [plain, star, kw_default, kw_required, only, anything, mutable_default]
    for handler in handlers:
        task = app.register(handler)
        for count in range(7):
            args = tuple(range(count))
            try:
                task.signature.bind(*args)
            except TypeError:
                assert task.check_arguments(args, {}) is not None, (handler.__name__, count)
            else:
                assert task.check_arguments(args, {}) is None, (handler.__name__, count)
