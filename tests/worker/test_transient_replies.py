"""The worker binary under transient Redis replies (OOM on its heartbeat write, BUSY, MISCONF):
it keeps running, logs the descriptive outage line, reports not ready on /readyz and resumes
when Redis does; a worker started during such a condition retries its registration instead of
exiting 2.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.fixtures import require
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, read_records, wait_for

FAST = ["--retry-base", "0.05", "--retry-cap", "0.5", "--metrics-port", "0"]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    started = require(lambda: RedisServer(extra_args=["--enable-protected-configs", "yes"]).start())
    try:
        yield started
    finally:
        started.close()


@contextlib.contextmanager
def oom(client: redis.Redis) -> Iterator[str]:
    """maxmemory below what is used, noeviction: every write is refused with OOM."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        yield r"OutOfMemoryError OOM command not allowed"
    finally:
        client.config_set("maxmemory", "0")


@contextlib.contextmanager
def busy(client: redis.Redis) -> Iterator[str]:
    """Another client's Lua script spins; everyone else is answered BUSY until SCRIPT KILL."""
    client.config_set("busy-reply-threshold", "50")
    spinner = redis.Redis(
        host=client.connection_pool.connection_kwargs["host"],
        port=client.connection_pool.connection_kwargs["port"],
        socket_timeout=60,
    )
    spin = "local s = redis.call('TIME')[1] while redis.call('TIME')[1] - s < 50 do end"

    def run() -> None:
        with contextlib.suppress(redis.ResponseError):  # killed
            spinner.eval(spin, 0)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield r"ResponseError BUSY Redis is busy running a script"
    finally:
        wait_for("SCRIPT KILL to be accepted", lambda: _script_kill(client))
        thread.join(30)
        spinner.close()


def _script_kill(client: redis.Redis) -> bool:
    try:
        client.script_kill()
    except redis.ResponseError as exc:  # NOTBUSY: the script has not started yet
        return "NOTBUSY" not in str(exc)
    return True


@contextlib.contextmanager
def misconf(client: redis.Redis) -> Iterator[str]:
    """A background save fails (its directory is gone): writes are refused with MISCONF."""
    good_dir = client.config_get("dir")["dir"]
    doomed = Path(tempfile.mkdtemp(prefix="steadfetch-misconf-"))
    client.config_set("save", "3600 1")
    client.config_set("dir", str(doomed))
    shutil.rmtree(doomed)
    client.bgsave()
    wait_for(
        "the background save to fail",
        lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err",
    )
    try:
        yield r"ResponseError MISCONF"
    finally:
        client.config_set("dir", good_dir)
        client.config_set("save", "")
        client.bgsave()


FAULTS: dict[str, Callable[[redis.Redis], object]] = {"oom": oom, "busy": busy, "misconf": misconf}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_running_worker_rides_out_the_condition(
    server: RedisServer, start_worker: StartWorker, record_path: Path, fault: str
) -> None:
    oracle = redis.Redis(port=server.port, socket_timeout=10)
    worker = start_worker(server.url, *FAST).started()
    port = worker.health_port()
    assert http_get(port, "/readyz")[0] == 200
    with FAULTS[fault](oracle) as cause:  # type: ignore[attr-defined]
        # OOM and MISCONF refuse writes only: the heartbeat's MULTI is the first to meet them.
        operation = r"writing the heartbeat of worker \S+" if fault != "busy" else r"[^:]+"
        worker.wait_log(rf"Redis 127\.0\.0\.1:\d+/0 unreachable while {operation}: {cause}")
        _status, body = wait_for(
            "not ready", lambda: (r := http_get(port, "/readyz"))[0] == 503 and r
        )
        assert "reconnecting" in body and cause.split()[1] in body, body
        worker.wait_log(r"\(attempt 3, ")  # still retrying, not exited
        assert worker.poll() is None, worker.log
        assert http_get(port, "/healthz")[0] == 200  # an outage is not a reason to restart
    worker.wait_log(r"Redis 127\.0\.0\.1:\d+/0 reachable again after")
    wait_for("ready again", lambda: http_get(port, "/readyz")[0] == 200)
    with SyncProducer(server.url, deadline=10.0) as producer:
        producer.enqueue("work", f"after-{fault}")
    wait_for("the job after the fault", lambda: len(read_records(record_path)) >= 2)
    assert worker.stop() == 0, worker.log
    assert " exited" not in worker.log and "Traceback" not in worker.log
    oracle.close()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_worker_started_during_the_condition_retries_its_registration(
    server: RedisServer, start_worker: StartWorker, fault: str
) -> None:
    oracle = redis.Redis(port=server.port, socket_timeout=10)
    with FAULTS[fault](oracle) as cause:  # type: ignore[attr-defined]
        worker = start_worker(server.url, *FAST)
        worker.wait_log(rf"unreachable while registering worker \S+: {cause}.*\(attempt 2, ")
        assert worker.poll() is None, worker.log  # no exit 2: an outage, not configuration
    worker.started()
    assert worker.stop() == 0, worker.log
    oracle.close()


def test_the_heartbeat_carries_the_retry_state_as_fields(
    server: RedisServer, start_worker: StartWorker, record_path: Path
) -> None:
    """A job too large for the output buffer fails the fetch forever while heartbeats go
    through: the heartbeat carries the fetch's retry state as data (the same fields the log
    line is built from), and the outage lasts until the fetch itself succeeds."""
    oracle = redis.Redis(port=server.port, socket_timeout=10)
    with SyncProducer(server.url, deadline=10.0) as producer:
        producer.enqueue("work", "x" * 200_000)
    oracle.config_set("client-output-buffer-limit", "normal 64kb 0 0")
    # Slower retries than FAST: the 6th lost reply brings the budget to its floor, where the
    # adoption dead-letters the job as one this connection can never receive (fetcher.adoption,
    # LOST_LIMIT). With FAST that came within 0.8 s, sometimes before the test had seen a beat
    # with 3 attempts and lifted the limit (1 run in 10); now it comes after about 5 s.
    worker = start_worker(server.url, *FAST, "--retry-base", "0.5", "--retry-cap", "2")
    line = worker.wait_log(
        r"unreachable while (fetching from queues \[default\]|adopting[^:]*|[^:]+): "
        r"(\w+ [^(]+) \(attempt (\d+),"
    )

    def beat_in_outage() -> dict[str, object] | None:
        keys = oracle.keys("steadfetch:worker:*")
        beat = json.loads(oracle.get(keys[0]) or b"{}") if keys else {}
        return beat if (beat.get("retry_attempt") or 0) >= 3 else None

    beat = wait_for("a heartbeat written during the outage", beat_in_outage)
    assert beat["connection_state"] == "reconnecting", beat
    assert beat["endpoint"] == f"127.0.0.1:{server.port}/0"
    assert beat["outage_operation"] == line.group(1), beat
    assert beat["outage_cause"] == line.group(2).strip(), beat
    assert isinstance(beat["retry_next_at"], float) and beat["outages"] == 1
    assert str(beat["last_error"]).startswith(f"Redis 127.0.0.1:{server.port}/0 unreachable")
    oracle.config_set("client-output-buffer-limit", "normal 0 0 0")
    wait_for("the large job to run", lambda: read_records(record_path))
    worker.wait_log(r"reachable again after")
    assert worker.log.count("reachable again after") == 1, worker.log  # no flapping
    assert worker.stop() == 0
    oracle.close()


def test_connections_the_server_closes_while_idle_are_replaced_without_an_outage(
    server: RedisServer, start_worker: StartWorker, record_path: Path
) -> None:
    """``timeout 1`` in redis.conf: bursts of jobs grow the pool (acks overlap the heartbeat and
    the scheduler); in the idle gap after each burst the server closes the spare connections;
    the next burst meets them and replaces them quietly (counted in the heartbeat)."""
    oracle = redis.Redis(port=server.port, socket_timeout=10)
    oracle.config_set("timeout", "1")
    worker = start_worker(server.url, *FAST).started()

    def beat() -> dict[str, object]:
        keys = oracle.keys("steadfetch:worker:*")
        return json.loads(oracle.get(keys[0]) or b"{}") if keys else {}

    with SyncProducer(server.url, deadline=10.0) as producer:
        for burst in range(4):
            producer.enqueue_many([{"task": "work", "args": [f"b{burst}-{n}"]} for n in range(300)])
            done = 300 * (burst + 1)
            wait_for(f"burst {burst}", lambda done=done: _ended(record_path) >= done)
            time.sleep(2.5)  # the fault itself: idle for longer than the server's timeout
    wait_for("a quiet reconnect", lambda: int(beat().get("quiet_reconnects") or 0) >= 1)
    assert "unreachable" not in worker.log and "reachable again" not in worker.log, worker.log
    assert beat()["outages"] == 0
    assert worker.stop() == 0
    oracle.close()


def _ended(record_path: Path) -> int:
    return sum(1 for r in read_records(record_path) if r["event"] == "end")
