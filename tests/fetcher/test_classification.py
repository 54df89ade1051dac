"""Every Redis error reply by its prefix: one table (fetcher.failures.REPLIES), and each prefix
that a single redis-server can be made to send, provoked for real.

Transient replies (OOM, BUSY, MISCONF, NOREPLICAS, UNBLOCKED, a discarded MULTI, a script's
write under OOM) are retried until the condition ends; a SCRIPT FLUSH landing between the load
and the call is retried too; WRONGTYPE raises WrongTypeError; NOPERM, an unknown command and
auth failures raise ConfigurationError at once. TRYAGAIN and CLUSTERDOWN need a cluster: the
table test covers them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis import exceptions as rx

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import ConfigurationError, ConnectionState, RedisConnection, WrongTypeError
from steadfetch.fetcher.failures import (
    OTHER_REPLY,
    REPLIES,
    Failure,
    classify,
    describe,
    fatal_error,
    reply_code,
)
from steadfetch.fetcher.scripts import LuaScript
from tests.fetcher.conftest import FAST_RETRY, oracle_for
from tests.fetcher.test_connection import outage_lines, restored_lines
from tests.fixtures import require
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


# -- the table ------------------------------------------------------------------------------


OUT, CONF = Failure.OUTAGE, Failure.CONFIGURATION


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (rx.ResponseError("LOADING Redis is loading the dataset in memory"), OUT),
        (rx.BusyLoadingError("Redis is loading", status_code="LOADING"), OUT),
        (rx.ResponseError("BUSY Redis is busy running a script."), OUT),
        (rx.ResponseError("MISCONF Redis is configured to save RDB snapshots"), OUT),
        (
            rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
            OUT,
        ),
        (rx.ResponseError("OOM command not allowed when used memory"), OUT),
        (rx.TryAgainError("Multiple keys request during rehashing of slot"), OUT),
        (rx.ResponseError("TRYAGAIN Multiple keys request during rehashing"), OUT),
        (rx.ClusterDownError("The cluster is down"), OUT),
        (rx.ResponseError("CLUSTERDOWN Hash slot not served"), OUT),
        (rx.MasterDownError("Link with MASTER is down"), OUT),
        (rx.ReadOnlyError("You can't write against a read only replica."), OUT),
        (rx.ResponseError("NOREPLICAS Not enough good replicas to write."), OUT),
        (rx.ResponseError("UNBLOCKED force unblock from blocking operation"), OUT),
        (rx.ExecAbortError("Transaction discarded because of previous errors."), OUT),
        # A reply inside a MULTI (redis-py annotates it) and from inside a Lua script.
        (
            rx.ResponseError(
                "Command # 1 (SET k v) of pipeline caused error: MISCONF Errors writing to disk"
            ),
            OUT,
        ),
        (  # the asyncio client's form
            rx.ResponseError(
                "Command # 1 (SET k v) of pipeline caused error: ('MISCONF Errors writing',)"
            ),
            OUT,
        ),
        (
            rx.ResponseError("BUSY Redis is busy. script: 34af6e, on @user_script:1."),
            OUT,
        ),
        (rx.ConnectionError("Connection closed by server."), OUT),
        (rx.ConnectionError("max number of clients reached", status_code="ERR"), OUT),
        (rx.TimeoutError("Timeout reading from 127.0.0.1:6379"), OUT),
        (ConnectionRefusedError(111, "Connection refused"), OUT),
        (rx.NoScriptError("No matching script."), Failure.RELOAD_SCRIPT),
        (rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), Failure.JOB),
        (rx.AuthenticationError("invalid username-password pair"), CONF),
        (
            rx.AuthenticationError("HELLO must be called", status_code="NOAUTH"),
            CONF,
        ),
        (rx.NoPermissionError("this user has no permissions"), CONF),
        (rx.ResponseError("ERR unknown command 'LMOVEX'"), CONF),
        (rx.ResponseError("ERR Error running script: user_script:1: boom"), CONF),
        (rx.MovedError("3999 127.0.0.1:6381"), CONF),
        (
            rx.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),
            CONF,
        ),
        (rx.DataError("Invalid input of type: 'dict'"), CONF),
        # redis-py's cluster client (not replies): a cluster in transition, or a bug of ours.
        (rx.SlotNotCoveredError('Slot "12" is not covered by the cluster.'), OUT),
        (rx.RedisClusterException("Redis Cluster cannot be connected. Please provide"), OUT),
        (rx.RedisClusterException("All slots are not covered after query all startup_"), OUT),
        (rx.RedisClusterException("EVAL - all keys must map to the same key slot"), CONF),
        (rx.RedisClusterException("Cluster mode is not enabled on this node"), CONF),
        (ValueError("a bug, not Redis"), None),
    ],
)
def test_every_reply_has_one_class(exc: BaseException, expected: Failure | None) -> None:
    assert classify(exc) is expected


def test_describe_puts_back_the_prefix_redis_py_stripped() -> None:
    exc = rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
    assert describe(exc) == (
        "OutOfMemoryError OOM command not allowed when used memory > 'maxmemory'."
    )
    annotated = rx.ResponseError("Command # 2 (EXPIRE k 9) of pipeline caused error: BUSY x")
    assert reply_code(annotated) == "BUSY"
    assert describe(annotated) == "ResponseError BUSY x"


def test_a_configuration_error_in_a_pipeline_names_the_command() -> None:
    exc = rx.ResponseError(
        "Command # 2 (RPUSH steadfetch:queue:q job) of pipeline caused error: "
        "('WRONGTYPE Operation against a key holding the wrong kind of value',)"
    )
    error = fatal_error(exc, "h:6379/0", "enqueueing")
    assert isinstance(error, WrongTypeError)
    assert str(error) == (
        "Redis h:6379/0 refused enqueueing: ResponseError Command # 2 (RPUSH steadfetch:queue:q "
        "job) of pipeline caused error: WRONGTYPE Operation against a key holding the wrong kind "
        "of value (a steadfetch key holds a value of the wrong type; check the key prefix)"
    )


def test_contracts_table_lists_exactly_the_classified_prefixes() -> None:
    """docs/CONTRACTS.md's "Error classification" table and REPLIES say the same thing."""
    text = (ROOT / "docs" / "CONTRACTS.md").read_text()
    section = text[text.index("## Error classification") :]
    section = section[: section.index("\n## ", 3)]
    rows = re.findall(r"^\| `([A-Z]+)`[^|]*\| (\w+) \|", section, re.M)
    documented = dict(rows)
    assert documented == {code: reply.failure.name for code, reply in REPLIES.items()}
    assert OTHER_REPLY.failure.name in section


# -- provoked for real ----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server whose debug command and protected configs (``dir``) may be used."""
    started = require(
        lambda: RedisServer(
            extra_args=["--enable-debug-command", "yes", "--enable-protected-configs", "yes"]
        ).start()
    )
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
async def named_conn(server: RedisServer) -> Any:
    conn = RedisConnection.from_url(server.url, retry=FAST_RETRY, name="under-test")
    try:
        yield conn
    finally:
        await conn.close()


async def _retried_until_healed(
    conn: RedisConnection,
    operation: str,
    fn: Callable[[Any], Awaitable[Any]],
    heal: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
    *,
    block_timeout: float | None = None,
) -> tuple[Any, list[re.Match[str]]]:
    """Run ``fn`` while the fault holds: it must retry (two failed attempts, state
    reconnecting), then succeed once ``heal()`` ran; one recovery line. Returns the result and
    the outage lines."""
    caplog.set_level(logging.INFO, "fetcher")
    async with asyncio.TaskGroup() as tg:
        call = tg.create_task(conn.execute(operation, fn, block_timeout=block_timeout))
        await wait_until(
            lambda: (conn.stats.retry_attempt or 0) >= 2 or call.done(), what="two attempts"
        )
        assert not call.done(), call  # neither a result nor a ConfigurationError
        assert conn.state is ConnectionState.RECONNECTING
        assert conn.stats.operation == operation
        heal()
    assert conn.state is ConnectionState.CONNECTED
    assert len(restored_lines(caplog)) == 1
    return call.result(), outage_lines(caplog)


async def test_oom_on_writes_a_multi_and_a_script_is_an_outage(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    oracle = oracle_for(server.url)
    oracle.set("ballast", "x" * 10_000)
    oracle.config_set("maxmemory-policy", "noeviction")
    oracle.config_set("maxmemory", "1")
    writer = LuaScript.from_source("writer", "return redis.call('SET', KEYS[1], ARGV[1])")

    async def heartbeat_shaped(r: Any) -> Any:  # MULTI SET + EXPIRE, as the heartbeat writes
        pipe = r.pipeline(transaction=True)
        pipe.set("hb", "1")
        pipe.expire("hb", 30)
        return await pipe.execute()

    def heal() -> None:
        oracle.config_set("maxmemory", "0")

    for operation, fn in [
        ("writing the heartbeat", heartbeat_shaped),
        ("running a script", writer.bind(["k"], ["v"])),
        ("setting", lambda r: r.set("k2", "v")),
    ]:
        caplog.clear()
        oracle.config_set("maxmemory", "1")
        _, lines = await _retried_until_healed(named_conn, operation, fn, heal, caplog)
        assert lines[0]["cls"] == "OutOfMemoryError", lines[0].group(0)
        assert lines[0]["msg"].startswith("OOM command not allowed"), lines[0].group(0)
    oracle.close()


async def test_busy_script_of_another_client_is_an_outage(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    oracle = oracle_for(server.url)
    oracle.config_set("busy-reply-threshold", "50")
    busy = redis.Redis(port=server.port, socket_timeout=30)
    spin = "local s = redis.call('TIME')[1] while redis.call('TIME')[1] - s < 20 do end return 1"
    failed: list[BaseException] = []

    def run_script() -> None:
        try:
            busy.eval(spin, 0)
        except rx.ResponseError as exc:  # "ERR Script killed by user with SCRIPT KILL..."
            failed.append(exc)

    spinner = threading.Thread(target=run_script)
    spinner.start()
    try:
        await wait_until(
            lambda: _busy(oracle_for(server.url)), what="the script to make Redis BUSY"
        )

        def heal() -> None:
            oracle.script_kill()

        result, lines = await _retried_until_healed(
            named_conn, "reading", lambda r: r.get("k"), heal, caplog
        )
        assert result is None
        assert lines[0]["msg"].startswith("BUSY Redis is busy running a script"), lines[0][0]
    finally:
        spinner.join(30)
        busy.close()
        oracle.close()
    assert failed, "the script was not killed"


def _busy(client: redis.Redis) -> bool:
    try:
        client.get("probe")
    except rx.ResponseError as exc:
        return str(exc).startswith("BUSY")
    finally:
        client.close()
    return False


async def test_misconf_after_a_failed_background_save_is_an_outage(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    oracle = oracle_for(server.url)
    doomed = Path(tempfile.mkdtemp(prefix="steadfetch-misconf-"))
    oracle.config_set("save", "3600 1")  # MISCONF needs a save point configured
    oracle.config_set("dir", str(doomed))
    shutil.rmtree(doomed)
    oracle.bgsave()
    await wait_until(
        lambda: oracle.info("persistence")["rdb_last_bgsave_status"] == "err",
        what="the background save to fail",
    )

    def heal() -> None:
        oracle.config_set("dir", str(server.dir))
        oracle.bgsave()

    _, lines = await _retried_until_healed(
        named_conn, "setting", lambda r: r.set("k", "v"), heal, caplog
    )
    assert lines[0]["msg"].startswith("MISCONF"), lines[0][0]
    oracle.close()


async def test_noreplicas_is_an_outage(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    oracle = oracle_for(server.url)
    oracle.config_set("min-replicas-to-write", "1")
    _, lines = await _retried_until_healed(
        named_conn,
        "setting",
        lambda r: r.set("k", "v"),
        lambda: oracle.config_set("min-replicas-to-write", "0"),
        caplog,
    )
    assert lines[0]["msg"].startswith("NOREPLICAS"), lines[0][0]
    oracle.close()


async def test_unblocked_blocking_call_is_retried(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """CLIENT UNBLOCK ... ERROR sends the UNBLOCKED reply a failover sends a blocked client."""
    caplog.set_level(logging.INFO, "fetcher")
    oracle = oracle_for(server.url)
    async with asyncio.TaskGroup() as tg:
        call = tg.create_task(
            named_conn.execute("popping", lambda r: r.blpop(["q"], 5), block_timeout=5)
        )

        def blocked_id() -> int | None:
            for client in oracle.client_list():
                if client.get("name") == "under-test" and client.get("cmd") == "blpop":
                    return int(client["id"])
            return None

        await wait_until(lambda: blocked_id() is not None, what="the BLPOP to block")
        assert oracle.client_unblock(blocked_id(), error=True)
        await wait_until(lambda: named_conn.stats.attempts >= 1, what="the UNBLOCKED reply")
        await wait_until(lambda: blocked_id() is not None, what="the BLPOP to block again")
        oracle.rpush("q", "job")
    assert call.result() == (b"q", b"job")
    assert outage_lines(caplog)[0]["msg"].startswith("UNBLOCKED"), caplog.text
    oracle.close()


async def test_a_script_flush_never_surfaces_not_even_in_a_storm(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """After a SCRIPT FLUSH the script runs again by its source (EVAL, which cannot answer
    NOSCRIPT and caches it), so no flush, not even a storm from another client, reaches the
    caller or logs an outage line (with "SCRIPT LOAD, then EVALSHA", a flush landing in between
    did)."""
    caplog.set_level(logging.INFO, "fetcher")
    script = LuaScript.from_source("answer", "return 42")
    flusher_conn = oracle_for(server.url)
    assert await named_conn.execute("running a script", script.bind([], [])) == 42
    flusher_conn.script_flush()
    assert await named_conn.execute("running a script", script.bind([], [])) == 42
    assert flusher_conn.script_exists(script.sha) == [True]  # cached again by the EVAL
    flusher_conn.close()

    storm = oracle_for(server.url)
    stop = threading.Event()

    def flush_storm() -> None:
        while not stop.is_set():
            storm.script_flush()

    flusher = threading.Thread(target=flush_storm)
    flusher.start()
    try:
        for _ in range(30):
            assert await named_conn.execute("running a script", script.bind([], [])) == 42
    finally:
        stop.set()
        flusher.join(10)
        storm.close()
    assert outage_lines(caplog) == [], caplog.text


async def test_client_pause_is_an_outage_that_ends(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled server (CLIENT PAUSE, as DEBUG SLEEP or a long fork): timeouts, then recovery."""
    conn = RedisConnection.from_url(server.url, retry=FAST_RETRY, read_timeout=0.3)
    await conn.check()
    caplog.set_level(logging.INFO, "fetcher")
    oracle = oracle_for(server.url)
    oracle.client_pause(1500)
    try:
        assert await conn.execute("reading", lambda r: r.get("k")) is None
        assert outage_lines(caplog)[0]["cls"] == "TimeoutError"
        assert len(restored_lines(caplog)) == 1 and conn.stats.outages == 1
    finally:
        oracle.close()
        await conn.close()


async def test_wrongtype_is_a_job_error(server: RedisServer, named_conn: RedisConnection) -> None:
    oracle_for(server.url).set("steadfetch:queue:q", "not a list")
    with pytest.raises(WrongTypeError) as info:
        await named_conn.execute("pushing", lambda r: r.rpush("steadfetch:queue:q", "job"))
    assert isinstance(info.value, ConfigurationError)
    assert (info.value.endpoint, info.value.operation) == (named_conn.endpoint, "pushing")
    assert named_conn.stats.attempts == 0


async def test_noperm_and_unknown_command_are_configuration_errors(
    server: RedisServer,
) -> None:
    oracle = oracle_for(server.url)
    oracle.acl_setuser(
        "limited", enabled=True, passwords=["+pw"], commands=["+@all", "-rpush"], keys=["*"]
    )
    conn = RedisConnection.from_url(
        f"redis://limited:pw@127.0.0.1:{server.port}/0", retry=FAST_RETRY
    )
    with pytest.raises(ConfigurationError, match="grant this Redis user") as info:
        await conn.execute("pushing", lambda r: r.rpush("q", "job"))
    assert "NOPERM" in str(info.value) and info.value.operation == "pushing"
    with pytest.raises(ConfigurationError, match="lacks a command") as info:
        await conn.execute("probing", lambda r: r.execute_command("NOSUCHCOMMAND"))
    assert info.value.endpoint == conn.endpoint
    assert conn.stats.attempts == 0 and conn.stats.outages == 0
    await conn.close()
    oracle.close()


def test_every_raise_site_fills_endpoint_and_operation() -> None:
    """Every ``raise`` of a FetcherError in fetcher/ passes endpoint= and operation=, except
    the URL parser's (a malformed URL has no endpoint yet)."""
    missing = []
    for path in sorted((ROOT / "fetcher").glob("*.py")):
        source = path.read_text()
        for match in re.finditer(r"(ConfigurationError|RedisUnavailable|WrongTypeError)\(", source):
            call = source[match.start() : source.find("\n\n", match.start())]
            if path.name in ("url.py", "errors.py"):
                continue
            if "endpoint=" not in call or "operation=" not in call:
                line = source.count("\n", 0, match.start()) + 1
                missing.append(f"{path.name}:{line}")
    assert missing == []


async def test_max_clients_reached_is_an_outage(
    server: RedisServer, named_conn: RedisConnection, caplog: pytest.LogCaptureFixture
) -> None:
    """``ERR max number of clients reached`` is an ERR reply, but a connection-level one."""
    oracle = oracle_for(server.url)
    oracle.ping()  # the one client allowed below
    oracle.config_set("maxclients", "1")
    _, lines = await _retried_until_healed(
        named_conn,
        "reading",
        lambda r: r.get("k"),
        lambda: oracle.config_set("maxclients", "100"),
        caplog,
    )
    assert "max number of clients reached" in lines[0]["msg"], lines[0][0]
    oracle.close()


@pytest.mark.parametrize("command", ["EVALSHA", "EVAL"])
async def test_a_renamed_command_is_named_as_renamed_not_as_an_old_redis(command: str) -> None:
    """``rename-command EVALSHA ""`` (a hardening guide's advice) on a current Redis: the hint
    said "use Redis >= 6.2", sending the operator to upgrade a server that is new enough."""
    with RedisServer(extra_args=["--rename-command", command, ""]) as server:
        conn = RedisConnection.from_url(server.url, retry=FAST_RETRY)
        probe = LuaScript.from_source("probe", "return 1").bind([], [])
        with pytest.raises(ConfigurationError, match="renamed or disabled") as info:
            for _ in range(2):  # by its source the first time, by its SHA after that
                await conn.execute("probing", probe)
        assert f"unknown command '{command}'" in str(info.value)
        await conn.close()


async def test_scripts_do_not_need_the_script_command() -> None:
    """A script the server lost runs again by its source (EVAL), so a Redis whose SCRIPT command
    is renamed away serves steadfetch as well."""
    with RedisServer(extra_args=["--rename-command", "SCRIPT", ""]) as server:
        conn = RedisConnection.from_url(server.url, retry=FAST_RETRY)
        probe = LuaScript.from_source("probe-script-free", "return 7")
        assert await conn.execute("probing", probe.bind([], [])) == 7
        assert await conn.execute("probing", probe.bind([], [])) == 7  # by its SHA now
        await conn.close()
