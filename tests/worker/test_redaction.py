"""A Redis password holding ``/ @ ? # % &`` (not percent-encoded) never appears in anything the
binary prints: ``--help`` (URL from STEADFETCH_REDIS_URL), error messages, logs in text and in
JSON, ``status --json`` and the heartbeat in Redis; and the worker still authenticates with it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from tests.fetcher.test_url import FRAGMENTS, SPECIAL
from tests.worker.conftest import StartWorker
from tests.worker.harness import clean_env, http_get, read_records, run_cli, wait_for


def _leaks(text: str) -> list[str]:
    return [fragment for fragment in FRAGMENTS if fragment in text]


def _steadfetch(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=clean_env(STEADFETCH_REDIS_URL=url))


@pytest.fixture(scope="module")
def server() -> object:
    with RedisServer(password=SPECIAL) as started:
        yield started


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SPECIAL}@127.0.0.1:6379/0",
        f"redis://al%40ice:{SPECIAL}@127.0.0.1:6379/0",  # a "%" left in the shown URL
        f"redis://127.0.0.1:6379/0?password={SPECIAL}",
        f"redis:/:{SPECIAL}@127.0.0.1:6379/0",  # a typo in the scheme
        f"alice:{SPECIAL}@127.0.0.1:6379",  # no scheme at all
    ],
)
def test_help_never_shows_the_password(url: str) -> None:
    for command in (["run", "--help"], ["status", "--help"], ["enqueue", "--help"]):
        result = _steadfetch(*command, url=url)
        assert result.returncode == 0, result.stderr
        assert "***" in result.stdout
        assert _leaks(result.stdout + result.stderr) == [], result.stdout


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_logs_status_and_heartbeat_never_show_the_password(
    server: RedisServer, start_worker: StartWorker, record_path: object, log_format: str
) -> None:
    url = f"redis://:{SPECIAL}@127.0.0.1:{server.port}/0"
    worker = start_worker(None, "--log-format", log_format, env={"STEADFETCH_REDIS_URL": url})
    worker.started()
    enqueued = _steadfetch("enqueue", "work", "r-1", url=url)
    assert enqueued.returncode == 0, enqueued.stderr
    wait_for("the job to run", lambda: read_records(record_path))  # type: ignore[arg-type]
    status = _steadfetch("status", "--json", url=url)
    assert status.returncode == 0, status.stderr
    json.loads(status.stdout)
    assert _leaks(status.stdout + status.stderr) == []
    oracle = redis.Redis(port=server.port, password=SPECIAL, socket_timeout=10)
    beats = [oracle.get(key) or b"" for key in oracle.keys("steadfetch:worker:*")]
    assert beats and _leaks(b"".join(beats).decode()) == []
    oracle.close()
    assert worker.stop() == 0
    if log_format == "json":
        assert all(json.loads(line) for line in worker.log.splitlines() if line.strip())
    assert _leaks(worker.log) == [], worker.log


def test_error_messages_never_show_the_password(
    server: RedisServer, start_worker: StartWorker
) -> None:
    wrong = SPECIAL.replace("pa/ss", "pa/sX")
    cases = [
        (f"redis://:{wrong}@127.0.0.1:{server.port}/0", "check the password"),
        (f"redis://127.0.0.1:{server.port}/0", "requires a password"),
        (f"redis://:{SPECIAL}@127.0.0.1:notaport/0", "has port"),
        (f"redis://127.0.0.1:{server.port}/0?password={SPECIAL}&timeout=1", "unknown parameter"),
        (f"redis:/:{SPECIAL}@127.0.0.1:{server.port}/0", "no supported scheme"),
    ]
    for url, said in cases:
        result = _steadfetch("status", "--json", url=url)
        assert result.returncode == 2, (url, result.stdout, result.stderr)
        assert said in result.stderr, result.stderr
        assert _leaks(result.stdout + result.stderr) == [], result.stderr
        worker = start_worker(None, env={"STEADFETCH_REDIS_URL": url})
        assert worker.wait() == 2, worker.log
        assert said in worker.log and _leaks(worker.log) == [], worker.log


@pytest.mark.parametrize(
    "argv",
    [
        ["status", f"redis://:{SPECIAL}@127.0.0.1:6379/0"],  # the URL without its flag
        ["run", "x:app", f"--redisurl=redis://:{SPECIAL}@127.0.0.1:6379/0"],  # a typo in it
        ["run", "x:app", "--mode", f"redis://:{SPECIAL}@127.0.0.1:6379/0"],  # a flag mixed up
        [f"redis://:{SPECIAL}@127.0.0.1:6379/0", "status"],  # taken for the COMMAND
        ["status", f"alice:{SPECIAL}@127.0.0.1:6379"],
    ],
)
def test_usage_errors_never_echo_a_password_from_the_command_line(argv: list[str]) -> None:
    """argparse quotes the arguments it refuses; a Redis URL among them is redacted."""
    result = run_cli(*argv, env=clean_env())
    assert result.returncode == 2, result.stderr
    assert "***" in result.stderr and _leaks(result.stderr) == [], result.stderr


#: The issue's example: an "@" in the password, unencoded; "s3cr3t" must never show.
AT_PASSWORD = "p@ss-s3cr3t"


@pytest.fixture(scope="module")
def at_server() -> object:
    with RedisServer(password=AT_PASSWORD) as started:
        oracle = redis.Redis(port=started.port, password=AT_PASSWORD, socket_timeout=10)
        oracle.acl_setuser(
            "user",
            enabled=True,
            passwords=[f"+{AT_PASSWORD}"],
            commands=["+@all"],
            keys=["*"],
            channels=["*"],
        )
        oracle.close()
        yield started


@pytest.mark.parametrize("userinfo", [f":{AT_PASSWORD}", f"user:{AT_PASSWORD}"])
def test_an_at_password_shows_nowhere_a_supervised_worker_prints(
    at_server: RedisServer, start_worker: StartWorker, record_path: object, userinfo: str
) -> None:
    """Through the supervisor's relay (two children), /metrics, heartbeats, ``status`` and
    ``top``: the worker authenticates with the password and never prints it."""
    url = f"redis://{userinfo}@127.0.0.1:{at_server.port}/0"
    worker = start_worker(
        None, "--processes", "2", "--metrics-port", "0", env={"STEADFETCH_REDIS_URL": url}
    )
    worker.wait_log(r"worker \S+ started", count=2)
    assert _steadfetch("enqueue", "work", "r-1", url=url).returncode == 0
    wait_for("the job to run", lambda: read_records(record_path))  # type: ignore[arg-type]
    code, metrics = http_get(worker.health_port(), "/metrics")
    assert code == 200 and "s3cr3t" not in metrics
    oracle = redis.Redis(port=at_server.port, password=AT_PASSWORD, socket_timeout=10)
    beats = [oracle.get(key) or b"" for key in oracle.keys("steadfetch:worker:*")]
    oracle.close()
    assert beats and b"s3cr3t" not in b"".join(beats)
    for command in (["status"], ["status", "--json"], ["top"], ["dead-letter", "list"]):
        shown = _steadfetch(*command, url=url)
        assert shown.returncode == 0, (command, shown.stderr)
        assert "s3cr3t" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    assert worker.stop() == 0
    assert "s3cr3t" not in worker.log, worker.log


def test_at_password_connection_errors_never_show_it(at_server: RedisServer) -> None:
    """Each URL form reaching a server it cannot use (TLS to a plain server, a wrong password,
    a Sentinel or a cluster that is not one, an unknown parameter after a password): the error
    says what went wrong and never shows the password."""
    port = at_server.port
    cases = [
        (f"redis://:p@ss-wrong-s3cr3t@127.0.0.1:{port}/0", 2, "check the password"),
        (f"redis://127.0.0.1:{port}/0?password=p@ss&secret=s3cr3t", 2, "unknown parameter"),
        (f"rediss://:{AT_PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=none", 1, "unreachable"),
        (f"redis+sentinel://:{AT_PASSWORD}@127.0.0.1:{port}/mymaster/0", 1, "unreachable"),
        (f"redis+cluster://:{AT_PASSWORD}@127.0.0.1:{port}/", 1, "unreachable"),
    ]
    for url, exit_code, said in cases:
        result = _steadfetch("status", url=url)
        assert result.returncode == exit_code, (url, result.stderr)
        assert said in result.stderr, result.stderr
        assert "s3cr3t" not in result.stdout + result.stderr, result.stderr
