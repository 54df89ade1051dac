"""The binary's edges: usage errors, environment variables, a Redis that is absent or refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from steadfetch.worker.redis_server import free_port
from tests.worker.conftest import StartWorker
from tests.worker.harness import ROOT, run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "the following arguments are required: APP"),
        (["run", "x:app", "--concurrency", "0"], "--concurrency: must be >= 1, got 0"),
        (["run", "x:app", "--mode", "eventually"], "invalid choice: 'eventually'"),
        (["run", "x:app", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["run", "no_colon"], "APP must look like module:attr"),
        (["run", "no_such_module_xyz:app"], "cannot import module 'no_such_module_xyz'"),
        (
            ["run", "steadfetch.worker.demo:greet"],
            "steadfetch.worker.demo:greet is a function, not a steadfetch.App",
        ),
        (["enqueue", "t", "--kwargs", "[1]"], "argument --kwargs: must be a JSON object"),
        (["enqueue", "t", "NaN"], "argument ARGS: NaN is not JSON"),
        (["enqueue", "t", "[1, Infinity]"], "argument ARGS: Infinity is not JSON"),
        (["enqueue", "t", "--delay", "nan"], "argument --delay: must be a finite number"),
        (["enqueue", "t", "1", "--resque", "--kwargs", '{"a": 1}'], "positional arguments only"),
        (["enqueue", "t", "--queue", "resque:q", "--kwargs", '{"a": 1}'], "positional arguments"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["status", "--redis-retry-base", "9", "--redis-retry-cap", "1"], "need --redis-retry"),
        (["run", "x:a", "--job-retry-base", "9", "--job-retry-cap", "1"], "need 0 < --job-retry"),
        # Huge values: a traceback (OverflowError), a stalled loop (10**7 runner tasks), or Redis
        # refusing a TTL or block timeout with a "bug in a Lua script" hint; now usage errors.
        (["run", "x:a", "--concurrency", "99999999999999999999"], "--concurrency must be <="),
        (["run", "x:a", "--concurrency", "10000000"], "--concurrency must be <= 10000"),
        (["run", "x:a", "--prefetch", "99999999999999999999"], "--prefetch must be <= 10000"),
        (["run", "x:a", "--heartbeat-interval", "1e300"], "--heartbeat-interval must be <="),
        (["run", "x:a", "--block-timeout", "1e300"], "--block-timeout must be <= 31536000"),
        (["run", "x:a", "--read-timeout", "1e300"], "--read-timeout must be <= 31536000"),
        # Redis refuses such a client name at registration, after connecting, in its own words
        (["run", "x:a", "--worker-id", "a b"], "--worker-id must be printable ASCII"),
        (["run", "x:a", "--worker-id", "wörker"], "--worker-id must be printable ASCII"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("raise RuntimeError('no config file')\n", "raised RuntimeError: no config file (at "),
        ("import no_such_dependency_xyz\n", "No module named 'no_such_dependency_xyz'"),
        ("x = 1 +\n", "raised SyntaxError: invalid syntax"),
        ("app = 42\n", "broken_app:app is a int, not a steadfetch.App"),
        # BaseExceptions of a module are load errors too, never a silent exit (0 for
        # sys.exit(0), argparse run at import) or a traceback (found by the attack1 session)
        ("import sys\nsys.exit(0)\n", "raised SystemExit: 0 (at "),
        ("raise SystemExit('config missing')\n", "raised SystemExit: config missing (at "),
        ("raise GeneratorExit('odd')\n", "raised GeneratorExit: odd (at "),
        ("class Odd(BaseException): pass\nraise Odd('x')\n", "raised Odd: x (at "),
    ],
)
def test_a_bad_app_is_one_line_and_exit_2(tmp_path: Path, module: str, message: str) -> None:
    (tmp_path / "broken_app.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_cli("run", "broken_app:app", "--redis-url", "redis://127.0.0.1:1/0", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # no usage dump, no traceback
    assert result.stderr.startswith("steadfetch run: error: ")
    assert message in result.stderr


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"steadfetch {version('steadfetch')}"


def test_bad_environment_value_is_a_usage_error_naming_the_variable() -> None:
    result = run_cli("run", "x:app", env={"STEADFETCH_CONCURRENCY": "many", "PATH": ""})
    assert result.returncode == 2
    assert (
        "argument --concurrency: invalid positive_int value: 'many' "
        "(from the environment: STEADFETCH_CONCURRENCY='many')" in result.stderr
    )


def test_python_dash_m_worker_is_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "steadfetch.worker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    for command in ("run", "enqueue", "status", "dead-letter", "top", "demo"):
        assert command in result.stdout


def test_flags_come_from_the_environment(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(
        None, env={"STEADFETCH_REDIS_URL": redis_server.url, "STEADFETCH_CONCURRENCY": "7",
                   "STEADFETCH_QUEUES": "high,low"}
    ).started()  # fmt: skip
    worker.wait_log(r"queues \[high, low\], concurrency 7 ")
    assert worker.stop() == 0


@pytest.fixture
def unused_port() -> Iterator[int]:
    yield free_port()


def test_unreachable_redis_at_start_keeps_retrying_with_clear_logs_then_starts(
    unused_port: int, start_worker: StartWorker
) -> None:
    worker = start_worker(f"redis://127.0.0.1:{unused_port}/0", "--retry-cap", "0.3")
    line = worker.wait_log(
        rf"Redis 127.0.0.1:{unused_port}/0 unreachable while registering worker \S+: "
        r"ConnectionRefusedError .*\(attempt 3, down [\d.]+ s, retrying in [\d.]+ s\)"
    )
    assert line
    with RedisServer(port=unused_port):
        worker.wait_log(rf"Redis 127.0.0.1:{unused_port}/0 reachable again after")
        worker.started()
        assert worker.stop() == 0


def test_sigterm_while_redis_is_unreachable_at_start_exits_zero_at_once(
    unused_port: int, start_worker: StartWorker
) -> None:
    worker = start_worker(f"redis://127.0.0.1:{unused_port}/0", "--grace-period", "30")
    worker.wait_log("unreachable while registering")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    worker.wait_log("stopped before it started: nothing was taken")


def test_wrong_password_exits_2_saying_so_without_the_password(start_worker: StartWorker) -> None:
    with RedisServer(password="right-secret") as server:
        worker = start_worker(f"redis://:hunter2-wrong@127.0.0.1:{server.port}/0")
        assert worker.wait() == 2
    log = worker.log
    assert "password" in log.lower()
    assert "hunter2-wrong" not in log
    assert "right-secret" not in log
    assert "Traceback" not in log


def test_password_changed_under_a_running_worker_exits_2_saying_so(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(redis_server.url).started()
    with redis.Redis(port=redis_server.port) as admin:
        admin.config_set("requirepass", "rotated-secret")
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert worker.wait() == 2
    assert "cannot continue" in worker.log
    assert "rotated-secret" not in worker.log


def test_an_unexpected_error_ends_the_process_with_a_traceback_and_exit_1(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer
) -> None:
    # (a --metrics-port in use provoked this until it became a configuration error, exit 2)
    producer.enqueue("stop_the_loop")
    worker = start_worker(redis_server.url, app="tests.worker.loop_stopping_app:app")
    assert worker.wait() == 1
    assert "CRITICAL worker.cli: unexpected error, exiting" in worker.log
    assert "Traceback" in worker.log
    assert "Event loop stopped before Future completed" in worker.log


def fake_plugin(tmp_path: Path, entry: str, module: str | None = None) -> dict[str, str]:
    """A real distribution on PYTHONPATH with one ``steadfetch.commands`` entry point."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[steadfetch.commands]\nbroken = {entry}\n")
    if module is not None:
        (tmp_path / "broken_plugin_module.py").write_text(module)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_a_plugin_that_cannot_import_leaves_other_commands_alone_and_says_what_to_install(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = fake_plugin(tmp_path, "no_such_module_for_steadfetch:register")
    result = run_cli("status", "--redis-url", redis_server.url, env=env)
    assert result.returncode == 0, result.stderr
    assert "queues:" in result.stdout
    assert result.stderr == ""  # no warning on every command for an extra not installed
    used = run_cli("broken", "list", "--flag", env=env)
    assert used.returncode == 2
    assert used.stderr.strip() == (
        "steadfetch broken: error: steadfetch broken needs 'no_such_module_for_steadfetch', "
        "which is not installed: pip install 'broken-plugin[broken]'"
    )


def test_a_plugin_that_fails_otherwise_is_logged_and_skipped(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    module = "def register(sub):\n    raise RuntimeError('bug')\n"
    env = fake_plugin(tmp_path, "broken_plugin_module:register", module)
    result = run_cli("status", "--redis-url", redis_server.url, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "skipping subcommand plugin 'broken' (broken_plugin_module:register): RuntimeError: bug"
        in result.stderr
    )


BLOCK_CHAOS_EXTRA = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("toxiproxy", "testcontainers", "docker"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""


@pytest.mark.parametrize("command", [["chaos", "list"], ["chaos", "run", "-k", "cut"]])
def test_chaos_without_its_extra_says_what_to_install(tmp_path: Path, command: list[str]) -> None:
    """A pip install without steadfetch[chaos]: toxiproxy, testcontainers and docker absent
    (a sitecustomize on PYTHONPATH makes importing them fail)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_CHAOS_EXTRA)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_cli(*command, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "which is not installed: pip install 'steadfetch[chaos]'" in lines[0]
    assert run_cli("--help", env=env).returncode == 0


def test_enqueue_to_an_unreachable_redis_gives_up_after_its_timeout(unused_port: int) -> None:
    result = run_cli(
        "enqueue",
        "work",
        "x",
        "--timeout",
        "1",
        "--redis-url",
        f"redis://127.0.0.1:{unused_port}/0",
    )
    assert result.returncode == 1
    assert f"Redis 127.0.0.1:{unused_port}/0 unreachable while enqueueing 1 job(s)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        # The Redis URL given as APP (--redis-url forgotten): the "no attribute" line quoted it.
        ["run", "redis://:s3cr3t@127.0.0.1:1/0"],
        ["run", "redis://127.0.0.1:1/0?password=s3cr3t"],
        ["run", "redis+sentinel://u:s3cr3t@h1:26379/mm"],
        # argparse quotes what it refuses: a password parameter in upper case or with a
        # percent-encoded name (both parsed as one) was not recognised as one.
        ["run", "x:app", "redis://127.0.0.1:1/0?PASSWORD=s3cr3t"],
        ["run", "x:app", "redis://127.0.0.1:1/0?pass%77ord=s3cr3t"],
    ],
)
def test_a_usage_error_quoting_a_redis_url_never_shows_its_password(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr and "s3cr3t" not in result.stderr, result.stderr
