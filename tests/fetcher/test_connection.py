"""The connection owner against a real redis-server that is killed, paused, refused, demoted.

Each retryable failure is provoked for real, recovers, and logs the issue's lines; each fatal one
fails fast with a message saying what to fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import (
    ConfigurationError,
    ConnectionEvent,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    RedisConnection,
    RedisUnavailable,
    RetryPolicy,
)
from steadfetch.worker.redis_server import free_port
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.polling import wait_until

OUTAGE = re.compile(
    r"^Redis (?P<endpoint>\S+) unreachable while (?P<op>.+?): (?P<cls>\w+) (?P<msg>.+) "
    r"\(attempt (?P<attempt>\d+), down (?P<down>\d+\.\d) s, retrying in (?P<wait>\d+\.\d) s\)$"
)
RESTORED = re.compile(r"^Redis (\S+) reachable again after \d+\.\d s \((\d+) attempts\)$")


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = [r.getMessage() for r in caplog.records if r.name == "fetcher.connection"]
    matches = [OUTAGE.match(line) for line in lines if "unreachable while" in line]
    assert all(matches), f"malformed outage line(s): {lines}"
    return [m for m in matches if m]


def restored_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = [r.getMessage() for r in caplog.records if r.name == "fetcher.connection"]
    return [m for m in (RESTORED.match(line) for line in lines) if m]


@pytest.fixture
def unstarted_server() -> Iterator[RedisServer]:
    server = RedisServer(port=free_port())
    try:
        yield server
    finally:
        server.close()


async def test_refused_until_redis_starts_then_recovers_and_logs(
    unstarted_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    conn = RedisConnection.from_url(unstarted_server.url, retry=FAST_RETRY)
    events: list[ConnectionEvent] = []
    conn.subscribe(events.append)
    async with asyncio.TaskGroup() as tg:
        ping = tg.create_task(
            conn.execute("fetching from queues [high, default]", lambda r: r.ping())
        )
        await wait_until(lambda: conn.stats.attempts >= 3, what="three failed attempts")
        assert conn.state is ConnectionState.RECONNECTING
        assert conn.stats.outage_since is not None
        await asyncio.to_thread(unstarted_server.start)
    assert ping.result() is True
    endpoint = f"127.0.0.1:{unstarted_server.port}/0"
    lines = outage_lines(caplog)
    assert len(lines) >= 3
    first = lines[0]
    assert first["endpoint"] == endpoint
    assert first["op"] == "fetching from queues [high, default]"
    assert first["cls"] == "ConnectionRefusedError"
    assert first["msg"].startswith("[Errno 111]")
    assert [int(m["attempt"]) for m in lines] == list(range(1, len(lines) + 1))
    restored = restored_lines(caplog)
    assert len(restored) == 1 and restored[0][1] == endpoint
    assert int(restored[0][2]) == len(lines)  # every failed attempt counted
    assert [type(e) for e in events] == [ConnectionLost, ConnectionRestored]
    assert conn.state.value == "connected"
    assert conn.stats.outage_since is None and conn.stats.outages == 1
    assert conn.stats.last_error is not None
    assert OUTAGE.match(conn.stats.last_error), conn.stats.last_error  # the last line, as logged
    assert conn.stats.last_error == lines[-1].group(0)
    assert isinstance(events[0], ConnectionLost)
    assert events[0].error == f"{first['cls']} {first['msg']}"
    await conn.close()


async def test_sigkill_and_restart_of_redis_is_survived(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY)
    await conn.execute("writing", lambda r: r.set("k", "v"))
    redis_server.kill()
    async with asyncio.TaskGroup() as tg:
        get = tg.create_task(conn.execute("reading", lambda r: r.get("k")))
        await wait_until(lambda: conn.stats.attempts >= 2, what="two failed attempts")
        await asyncio.to_thread(redis_server.start)
    assert get.result() is None  # no persistence: the restarted Redis is empty, but it answers
    lines = outage_lines(caplog)
    assert lines[0]["op"] == "reading"
    assert lines[0]["cls"] in {"ConnectionError", "ConnectionResetError", "ConnectionRefusedError"}
    assert all(m["msg"].strip() for m in lines)
    assert len(restored_lines(caplog)) == 1
    await conn.close()


async def test_paused_redis_surfaces_as_a_read_timeout_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    conn = RedisConnection.from_url(redis_server.url, retry=FAST_RETRY, read_timeout=0.3)
    await conn.check()
    redis_server.pause()
    try:
        async with asyncio.TaskGroup() as tg:
            ping = tg.create_task(conn.execute("pinging", lambda r: r.ping()))
            await wait_until(lambda: conn.stats.attempts >= 2, what="two timeouts")
            redis_server.resume()
    finally:
        redis_server.resume()
    assert ping.result() is True
    lines = outage_lines(caplog)
    assert lines[0]["cls"] == "TimeoutError"
    assert lines[0]["msg"] == "no reply within the read timeout"
    await conn.close()


async def test_wrong_password_fails_fast_and_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with RedisServer(password="right-horse-battery") as server:
        url = f"redis://:wrong-staple-9@127.0.0.1:{server.port}/0"
        conn = RedisConnection.from_url(url, retry=FAST_RETRY)
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as info:
            await conn.check()
        assert time.monotonic() - started < 5.0
        message = str(info.value)
        assert f"Redis 127.0.0.1:{server.port}/0 refused checking the connection" in message
        assert "check the password" in message
        assert "wrong-staple-9" not in message and "wrong-staple-9" not in repr(conn)
        assert "wrong-staple-9" not in caplog.text
        assert conn.stats.attempts == 0  # never retried
        nopass = RedisConnection.from_url(f"redis://127.0.0.1:{server.port}/0", retry=FAST_RETRY)
        with pytest.raises(ConfigurationError) as missing:
            await nopass.check()
        # The fix comes first, before redis-py's "HELLO must be called with ..." text.
        text = str(missing.value)
        assert text.startswith(
            f"Redis 127.0.0.1:{server.port}/0 refused checking the connection: this Redis "
            "requires a password: put it in the URL"
        ), text
        assert text.index("requires a password") < text.index("HELLO must be called")
        await conn.close()
        await nopass.close()


async def test_unknown_command_fails_fast_after_one_attempt(conn: RedisConnection) -> None:
    calls = 0

    async def run(r: redis.asyncio.Redis) -> object:
        nonlocal calls
        calls += 1
        return await r.execute_command("LMOVEZ", "a", "b")  # type: ignore[no-untyped-call]

    with pytest.raises(ConfigurationError, match=r"unknown command.*older than Redis 6\.2"):
        await conn.execute("moving", run)
    assert calls == 1


async def test_exact_attempts_and_delays_with_an_injected_sleep(
    unstarted_server: RedisServer,
) -> None:
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    policy = RetryPolicy(base=0.1, cap=0.4, jitter=False, max_attempts=5, sleep=record)
    conn = RedisConnection.from_url(unstarted_server.url, retry=policy)
    calls = 0

    async def run(r: redis.asyncio.Redis) -> object:
        nonlocal calls
        calls += 1
        return await r.ping()

    with pytest.raises(RedisUnavailable, match=r"ConnectionRefusedError .*gave up after 5 attempt"):
        await conn.execute("pinging", run)
    assert calls == 5
    assert slept == [0.1, 0.2, 0.4, 0.4]
    assert conn.stats.attempts == 5
    await conn.close()


async def test_one_shot_deadline_gives_up_in_time(unstarted_server: RedisServer) -> None:
    conn = RedisConnection.from_url(unstarted_server.url, retry=FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"unreachable while enqueueing: ConnectionRefused"):
        await conn.execute("enqueueing", lambda r: r.ping(), deadline=0.5)
    assert time.monotonic() - started < 0.5 + 2.0
    await conn.close()


def _connection_with_recorded_sleeps(
    policy: RetryPolicy,
) -> tuple[RedisConnection, list[float]]:
    """A connection (to nothing: the tests' fns fail on their own) whose retry waits are
    recorded instead of slept."""
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    retry = dataclasses.replace(policy, sleep=record)
    return RedisConnection.from_url("redis://127.0.0.1:1/0", retry=retry), slept


async def test_a_deadline_counts_the_first_attempt() -> None:
    """The first attempt runs outside the retry loop (the fast path); its time still counts
    toward the deadline."""
    conn, slept = _connection_with_recorded_sleeps(RetryPolicy(base=0.1, cap=0.1, jitter=False))
    calls = 0

    async def slow_then_failing(r: redis.asyncio.Redis) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)  # past the deadline below: no second attempt
        raise redis.exceptions.TimeoutError("Timeout reading from 127.0.0.1:1")

    with pytest.raises(RedisUnavailable, match=r"gave up after 1 attempt"):
        await conn.execute("pinging", slow_then_failing, deadline=0.25)
    assert (calls, slept) == (1, [])
    await conn.close()


async def test_a_failed_first_attempt_is_attempt_1_of_the_retry_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    conn, slept = _connection_with_recorded_sleeps(RetryPolicy(base=0.1, cap=0.4, jitter=False))
    calls = 0

    async def failing_twice(r: redis.asyncio.Redis) -> str:
        nonlocal calls
        calls += 1
        if calls <= 2:  # refused, not closed: a closed connection is first replaced quietly
            raise redis.exceptions.ConnectionError("Error 111 connecting. Connection refused.")
        return "ok"

    assert await conn.execute("pinging", failing_twice) == "ok"
    assert (calls, slept, conn.stats.attempts) == (3, [0.1, 0.2], 2)
    assert [m["attempt"] for m in outage_lines(caplog)] == ["1", "2"]
    assert [m[2] for m in restored_lines(caplog)] == ["2"]
    await conn.close()


async def test_readonly_replica_is_retried_until_promoted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    with RedisServer() as master, RedisServer() as replica:
        admin = oracle_for(replica.url)
        admin.replicaof("127.0.0.1", master.port)
        conn = RedisConnection.from_url(replica.url, retry=FAST_RETRY)
        async with asyncio.TaskGroup() as tg:
            write = tg.create_task(conn.execute("enqueueing", lambda r: r.rpush("q", "x")))
            await wait_until(lambda: conn.stats.attempts >= 2, what="READONLY retries")
            admin.replicaof("NO", "ONE")
        assert write.result() == 1
        assert outage_lines(caplog)[0]["cls"] == "ReadOnlyError"
        admin.close()
        await conn.close()


async def test_masterdown_replica_is_retried_until_promoted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    with (
        RedisServer() as master,
        RedisServer(extra_args=["--replica-serve-stale-data", "no"]) as replica,
    ):
        admin = oracle_for(replica.url)
        admin.replicaof("127.0.0.1", master.port)
        master.kill()
        conn = RedisConnection.from_url(replica.url, retry=FAST_RETRY)
        async with asyncio.TaskGroup() as tg:
            read = tg.create_task(conn.execute("reading", lambda r: r.llen("q")))
            await wait_until(lambda: conn.stats.attempts >= 2, what="MASTERDOWN retries")
            admin.replicaof("NO", "ONE")
        assert read.result() == 0
        first = outage_lines(caplog)[0]
        assert first["cls"] == "MasterDownError"
        assert first["msg"].startswith("MASTERDOWN Link with MASTER is down")
        admin.close()
        await conn.close()


async def test_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    with RedisServer(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"]):
        conn = RedisConnection.from_url(f"unix://{sock}?db=2", retry=FAST_RETRY)
        assert conn.endpoint == f"unix:{sock}/2"
        await conn.execute("writing", lambda r: r.set("k", "v"))
        assert await conn.execute("reading", lambda r: r.get("k")) == b"v"
        assert await conn.execute("reading", lambda r: r.client_info()) is not None
        await conn.close()


async def test_tls_for_real(tls_server: tuple[RedisServer, int, Path]) -> None:
    _, tls_port, ca = tls_server
    conn = RedisConnection.from_url(
        f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}", retry=FAST_RETRY
    )
    await conn.execute("writing", lambda r: r.set("k", "v"))
    assert await conn.execute("reading", lambda r: r.get("k")) == b"v"
    await conn.close()


async def test_an_untrusted_tls_certificate_fails_fast_saying_what_to_fix(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    _, tls_port, _ = tls_server
    conn = RedisConnection.from_url(f"rediss://127.0.0.1:{tls_port}/0", retry=FAST_RETRY)
    with pytest.raises(
        ConfigurationError,
        match=r"SSLCertVerificationError .*certificate verify failed.*ssl_ca_certs",
    ):
        await conn.check()
    assert conn.stats.attempts == 0
    await conn.close()


async def test_tls_url_against_a_plain_server_fails_with_a_description(
    redis_server: RedisServer,
) -> None:
    url = f"rediss://127.0.0.1:{redis_server.port}/0?ssl_cert_reqs=none"
    conn = RedisConnection.from_url(url, retry=FAST_RETRY, connect_timeout=1.0)
    with pytest.raises(RedisUnavailable) as info:
        await conn.execute("pinging", lambda r: r.ping(), deadline=0.5)
    assert f"Redis 127.0.0.1:{redis_server.port}/0 unreachable while pinging" in str(info.value)
    await conn.close()


async def test_zero_read_timeout_is_allowed_but_warned(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fetcher")
    conn = RedisConnection.from_url(redis_server.url, read_timeout=0)
    assert "read timeout disabled (read_timeout=0)" in caplog.text and "unsafe" in caplog.text
    await conn.check()
    await conn.close()


async def test_cancelled_blocking_call_leaves_no_broken_connection(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    blocked = asyncio.create_task(
        conn.execute("waiting", lambda r: r.blpop(["q"], 5), block_timeout=5)
    )
    await wait_until(
        lambda: any(c.get("cmd") == "blpop" for c in oracle.client_list()), what="BLPOP blocked"
    )
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    # The cancelled call's connection is closed, not returned to the pool half-read.
    await wait_until(
        lambda: not any(c.get("cmd") == "blpop" for c in oracle.client_list()),
        what="the cancelled BLPOP's connection to close",
    )
    oracle.rpush("q", "item")
    assert await conn.execute("reading", lambda r: r.get("absent")) is None
    assert oracle.llen("q") == 1  # the cancelled BLPOP did not take it


async def test_reset_and_close(conn: RedisConnection) -> None:
    await conn.check()
    await conn.reset()
    assert await conn.execute("pinging", lambda r: r.ping()) is True
    await conn.close()
    assert conn.state is ConnectionState.CLOSED
    with pytest.raises(RedisUnavailable, match="closed"):
        await conn.execute("pinging", lambda r: r.ping())


async def test_a_failing_listener_does_not_break_the_connection(
    unstarted_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = RedisConnection.from_url(unstarted_server.url, retry=FAST_RETRY)

    def broken(event: ConnectionEvent) -> None:
        raise RuntimeError("listener bug")

    conn.subscribe(broken)
    async with asyncio.TaskGroup() as tg:
        ping = tg.create_task(conn.execute("pinging", lambda r: r.ping()))
        await wait_until(lambda: conn.stats.attempts >= 1, what="a failure")
        await asyncio.to_thread(unstarted_server.start)
    assert ping.result() is True
    assert "listener bug" in caplog.text
    await conn.close()


async def test_loading_redis_is_retried_until_the_dataset_is_loaded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "fetcher")
    slow_load = [
        *("--key-load-delay", "50"),  # 20k keys: about 1 s of loading
        *("--loading-process-events-interval-bytes", "1024"),  # answer clients while loading
        *("--enable-debug-command", "yes"),
    ]
    with RedisServer(extra_args=slow_load) as server:
        admin = oracle_for(server.url)
        admin.execute_command("DEBUG", "POPULATE", 20_000)  # type: ignore[no-untyped-call]
        admin.save()
        admin.close()
        server.stop()
        conn = RedisConnection.from_url(server.url, retry=FAST_RETRY)
        async with asyncio.TaskGroup() as tg:
            # start() returns once PING answers, i.e. after loading: run it alongside.
            tg.create_task(asyncio.to_thread(server.start))
            value = await conn.execute("reading", lambda r: r.get("key:19999"))
        assert value == b"value:19999"
        loading = [m for m in outage_lines(caplog) if m["cls"] == "BusyLoadingError"]
        assert loading, "no LOADING reply was seen"
        assert loading[0]["msg"] == "LOADING Redis is loading the dataset in memory"
        await conn.close()


async def test_an_outage_with_a_password_url_never_logs_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with RedisServer(password="s3cr3t-in-url") as server:
        conn = RedisConnection.from_url(server.url, retry=FAST_RETRY)
        await conn.check()
        server.kill()
        async with asyncio.TaskGroup() as tg:
            ping = tg.create_task(conn.execute("pinging", lambda r: r.ping()))
            await wait_until(lambda: conn.stats.attempts >= 2, what="failed attempts")
            await asyncio.to_thread(server.start)
        assert ping.result() is True
        assert outage_lines(caplog) and restored_lines(caplog)
        assert "s3cr3t-in-url" not in caplog.text
        assert "s3cr3t-in-url" not in repr(conn) and "s3cr3t-in-url" not in str(conn.stats)
        await conn.close()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("return redis.call('INCR', KEYS[1])", r"WRONGTYPE .*@user_script.*check the key prefix"),
        ("return redis.call('NOPE')", r"called from script.*a steadfetch Lua script failed"),
        ("return +", r"Error compiling script.*a steadfetch Lua script failed"),
    ],
)
async def test_a_script_error_fails_fast_saying_so(
    conn: RedisConnection, script: str, message: str
) -> None:
    calls = 0

    async def run(r: redis.asyncio.Redis) -> object:
        nonlocal calls
        calls += 1
        return await r.eval(script, 1, "a-list")

    await conn.execute("preparing", lambda r: r.rpush("a-list", "x"))
    with pytest.raises(ConfigurationError, match=message):
        await conn.execute("running a script", run)
    assert calls == 1
