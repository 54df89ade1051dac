"""Attacks from outside: inputs, signals and Redis settings no other test names, each against
the real binary and a real redis-server. Each test here failed before its fix (or is marked
xfail with the reason, for code being restructured)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import termios
from pathlib import Path
from typing import IO

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from steadfetch.worker.logs import BackgroundStreamHandler, TextFormatter
from tests.polling import wait_for
from tests.worker.conftest import StartWorker
from tests.worker.harness import APP, ROOT, STEADFETCH, http_get, read_records, run_cli
from tests.worker.test_observability import metric

F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032  # in fcntl from Python 3.12 on (Linux)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--queues", "a,b,a"], {}),
        (["--queues", "a, a"], {}),
        ([], {"STEADFETCH_QUEUES": "x,x"}),
    ],
)
def test_a_queue_named_twice_is_a_usage_error_not_a_traceback(
    args: list[str], env: dict[str, str]
) -> None:
    # was: ValueError from Fetcher.__init__, a traceback and exit 1 (a supervisor restarts such
    # a child forever, since only exit 2 stops it)
    result = run_cli(
        "run", "tests.worker.apps:app", "--redis-url", "redis://127.0.0.1:1/0", *args,
        env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--queues: queue " in result.stderr and "named more than once" in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1", "no-such-host.invalid"])
def test_a_metrics_port_that_cannot_be_bound_is_one_line_and_exit_2(
    redis_server: RedisServer, start_worker: StartWorker, host: str
) -> None:
    # was: the OSError/gaierror of asyncio.start_server inside the TaskGroup, a 40-line
    # ExceptionGroup traceback and exit 1 (a supervisor restarts such a child forever)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker(redis_server.url, "--metrics-host", host, "--metrics-port", str(port))
        assert worker.wait() == 2, worker.log
    assert "Traceback" not in worker.log, worker.log
    line = worker.wait_log(r"ERROR worker\.cli: cannot continue: cannot serve metrics .*").group()
    assert f"{host}:{port}" in line and "--metrics-port" in line


def start_unread(record_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """``steadfetch run APP ARGS`` with stdout and stderr on one pipe nobody reads (yet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADFETCH_")}
    env["STEADFETCH_TEST_RECORD"] = str(record_path)
    return subprocess.Popen(
        [str(STEADFETCH), "run", APP, "--heartbeat-interval", "0.5", "--max-attempts", "1", *args],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def fill_with_tracebacks(producer: SyncProducer, oracle: redis.Redis, out: IO[bytes]) -> None:
    """300 failing jobs, ~2 KB of traceback each (far more than a pipe holds), all settled."""
    for i in range(300):
        producer.enqueue("fail_chained", "x" * 400 + str(i))
    wait_for("the 300 failures dead-lettered", lambda: oracle.llen("steadfetch:dead") == 300)
    capacity = fcntl.fcntl(out.fileno(), F_GETPIPE_SZ)
    waiting = struct.unpack("i", fcntl.ioctl(out.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    assert waiting > capacity - 8192, "the pipe was never full: the test proves nothing"


def test_a_stderr_nobody_reads_does_not_stop_the_worker(
    redis_server: RedisServer, oracle: redis.Redis, producer: SyncProducer, record_path: Path
) -> None:
    # was: the 64 KiB pipe filled with tracebacks, the next log write blocked the event loop:
    # no heartbeat (the worker looked dead), no settles, /healthz timing out, for as long as
    # nobody read (a stalled log shipper, a parent that only reads at the end)
    proc = start_unread(record_path, "--redis-url", redis_server.url, "--grace-period", "5")
    assert proc.stdout is not None
    try:
        fill_with_tracebacks(producer, oracle, proc.stdout)
        for i in range(20):
            producer.enqueue("work", f"after-{i}")
        ends = lambda: {r["token"] for r in read_records(record_path) if r["event"] == "end"}  # noqa: E731
        wait_for("the jobs behind them done", lambda: len(ends()) == 20)
        beats = {json.loads(oracle.get(key) or b"{}")["heartbeat_at"] for key in
                 oracle.keys("steadfetch:worker:*")}  # fmt: skip
        wait_for(
            "a heartbeat written while the pipe is full",
            lambda: {json.loads(oracle.get(k) or b"{}").get("heartbeat_at") for k in
                     oracle.keys("steadfetch:worker:*")} - beats,
        )  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)  # reading now: everything queued comes out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output[-3000:]
    assert b" stopped after running " in output


def test_records_beyond_the_bound_are_dropped_counted_and_said_once_the_stream_takes_again() -> (
    None
):
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)  # the smallest pipe
    os.write(write_fd, b"#" * 4096)  # full: the writer blocks on its first line
    with os.fdopen(write_fd, "w") as stream, os.fdopen(read_fd, "r") as reader:
        handler = BackgroundStreamHandler(stream, max_pending=5)
        handler.setFormatter(TextFormatter())
        log = logging.getLogger("attack.blocked")
        log.propagate = False
        log.addHandler(handler)
        try:
            for i in range(200):  # returns at once although nobody reads
                log.warning("line %d %s", i, "y" * 200)
            assert not handler.drained(timeout=0.2)
            lines: list[str] = []
            while not any("dropped" in line for line in lines):
                lines.append(reader.readline())
        finally:
            log.removeHandler(handler)
        handler.close()
    note = next(line for line in lines if "dropped" in line)
    dropped = int(note.split("WARNING worker.logs: ")[1].split()[0])
    written = [line for line in lines if " line " in line]
    assert dropped > 0 and len(written) + dropped <= 200
    assert " line 0 " in written[0]  # the oldest are kept, the newest dropped


@pytest.mark.parametrize("queue", ["a,b", " a", "a ", " ", ""])
def test_enqueue_refuses_a_queue_name_no_worker_can_be_told_to_consume(
    redis_server: RedisServer, oracle: redis.Redis, queue: str
) -> None:
    # was: 'enqueue --queue "a,b"' wrote steadfetch:queue:a,b (and ' a' steadfetch:queue: a),
    # while 'run --queues' splits at commas and strips spaces: the job waited forever, unseen
    result = run_cli("enqueue", "work", "t", "--queue", queue, "--redis-url", redis_server.url)
    assert result.returncode == 2, result.stderr
    assert "no name a worker's --queues can take" in result.stderr
    assert oracle.keys("*") == []


def test_sighup_is_a_graceful_stop_however_often_it_comes(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer,
    oracle: redis.Redis, record_path: Path,
) -> None:  # fmt: skip
    # was: the default action, death without a line (exit -1, 129 in a shell), its job cut
    # and left for recovery: a closed terminal or ssh session ended a worker silently
    worker = start_worker(redis_server.url).started()
    producer.enqueue("work", "long", 1.5)
    wait_for("the job started", lambda: read_records(record_path))
    worker.signal(signal.SIGHUP)
    worker.wait_log(r"shutdown requested \(SIGHUP: the terminal or session is gone\)")
    worker.signal(signal.SIGHUP)  # a hangup is never "stop at once"
    assert worker.wait() == 0, worker.log
    assert [r["event"] for r in read_records(record_path)] == ["start", "end"]
    assert "processed=1 " in worker.log and oracle.smembers("steadfetch:workers") == set()


def test_a_worker_started_ignoring_sighup_keeps_ignoring_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "nohup.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(STEADFETCH), "run", APP, "--redis-url", redis_server.url, "--grace-period", "5"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # as nohup does
        )  # fmt: skip
    try:
        wait_for("the worker started", lambda: " started: " in log_path.read_text())
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "SIGHUP" not in text and "shutdown requested (SIGTERM" in text, text


def test_an_eviction_policy_set_under_a_running_worker_is_noticed(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    # A managed Redis (a parameter group change) or an operator's CONFIG SET changes the
    # policy with no restart and no reconnect: the heartbeat and /metrics kept saying
    # noeviction (eviction_safe 1) while Redis could now evict the queues.
    worker = start_worker(redis_server.url, "--metrics-port", "0").started()
    port = worker.health_port()
    oracle.config_set("maxmemory-policy", "allkeys-lru")
    worker.wait_log(r"WARNING worker: Redis \S+ has maxmemory-policy allkeys-lru", timeout=15)
    assert metric(http_get(port, "/metrics")[1], "steadfetch_redis_eviction_safe") == 0
    oracle.config_set("maxmemory-policy", "noeviction")
    wait_for(
        "eviction safe again",
        lambda: metric(http_get(port, "/metrics")[1], "steadfetch_redis_eviction_safe") == 1,
    )
    assert worker.stop() == 0
    # One warning for the one change, not one per read (a read every 10 s).
    assert worker.log.count("has maxmemory-policy allkeys-lru") == 1


def test_status_into_a_reader_that_stops_early_ends_quietly(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    # was: 'steadfetch status | head -5' on a busy Redis: BrokenPipeError, a CRITICAL
    # "unexpected error" traceback and exit 1
    oracle.rpush("steadfetch:queue:q", "{}")  # a queue: status has something to print
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader is gone before status writes
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADFETCH_")}
    try:
        result = subprocess.run(
            [str(STEADFETCH), "status", "--redis-url", redis_server.url],
            cwd=ROOT, env=env, stdout=write_fd, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_fd)
    assert result.returncode == 128 + signal.SIGPIPE, result.stderr
    assert result.stderr == ""


def test_a_supervisor_whose_stderr_nobody_reads_still_forwards_sigterm(
    redis_server: RedisServer, oracle: redis.Redis, producer: SyncProducer, record_path: Path
) -> None:
    # was: the relay wrote each child line to a full stderr from the supervisor's event loop:
    # the loop blocked, SIGTERM was never forwarded, the supervisor and its child ran on
    proc = start_unread(
        record_path, "--processes", "1", "--redis-url", redis_server.url, "--grace-period", "3"
    )
    assert proc.stdout is not None
    try:
        wait_for("the child registered", lambda: oracle.scard("steadfetch:workers") == 1)
        fill_with_tracebacks(producer, oracle, proc.stdout)  # relayed by the supervisor
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(45) == 0  # still not reading
        assert oracle.smembers("steadfetch:workers") == set()  # the child drained and left
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


@pytest.mark.parametrize("flags", [["--unique-for", "1e300"], ["--unique-for", "1e13"]])
def test_a_huge_unique_window_neither_fails_the_enqueue_nor_stops_the_worker(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis, flags: list[str]
) -> None:
    # was: the window went to Redis as 1e303 ms: the enqueue worked, but the release at the
    # job's ack made PEXPIRE refuse the script ("a steadfetch Lua script failed; this is a
    # bug"): the worker stopped with exit 2 (a supervisor stops every child); with --delay
    # 1e300 the enqueue itself failed the same way
    url = redis_server.url
    assert run_cli("enqueue", "work", "u", "--job-id", "u1", *flags, "--redis-url", url).stdout
    delayed = run_cli("enqueue", "work", "d", "--delay", "1e300", *flags, "--redis-url", url)
    assert delayed.returncode == 0, delayed.stderr
    worker = start_worker(url).started()
    # held for 7 days while queued; the window (at most 10 years) from the ack on
    wait_for("the job acked", lambda: oracle.pttl("steadfetch:unique:u1") > 8 * 86400 * 1000)
    assert 0 < oracle.pttl("steadfetch:unique:u1") <= 10 * 365 * 86400 * 1000
    assert worker.stop() == 0, worker.log
    assert "processed=1 " in worker.log


def test_a_reservation_key_of_another_type_does_not_stop_the_worker(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    # was: the release after the ack hit WRONGTYPE on steadfetch:unique:ID (a per-job key,
    # set to a hash by anyone): "cannot continue", exit 2, for one job's key
    url = redis_server.url
    for job_id in ("hash", "garbage"):
        run_cli("enqueue", "work", job_id, "--job-id", job_id, "--unique-for", "5",
                   "--redis-url", url)  # fmt: skip
    oracle.delete("steadfetch:unique:hash")
    oracle.hset("steadfetch:unique:hash", "a", "b")
    oracle.set("steadfetch:unique:garbage", "no window here")
    worker = start_worker(url).started()
    wait_for("both jobs acked", lambda: oracle.llen("steadfetch:queue:default") == 0 and not
             oracle.keys("steadfetch:processing:*"))  # fmt: skip
    assert worker.stop() == 0, worker.log
    assert "processed=2 " in worker.log
    assert oracle.type("steadfetch:unique:hash") == b"hash"  # left alone


@pytest.mark.parametrize(
    "broken",
    [
        {"steadfetch:worker-queues:ghost": "string"},
        {"steadfetch:processing:ghost:steadfetch:queue:default": "hash"},
        {"steadfetch:processing:gone:steadfetch:queue:default": "hash"},  # an orphan sweep's
    ],
)
def test_a_dead_workers_key_of_another_type_does_not_stop_every_worker(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis,
    producer: SyncProducer, broken: dict[str, str],
) -> None:  # fmt: skip
    # now: recovery's WRONGTYPE is "cannot continue", exit 2, in every worker that runs
    # recovery (the whole fleet, a supervisor's every child), for one dead worker's key; the
    # message does not even name the key
    oracle.sadd("steadfetch:workers", "ghost")
    oracle.sadd("steadfetch:worker-queues:ghost", "steadfetch:queue:default")
    for key, kind in broken.items():
        oracle.delete(key)
        if kind == "string":
            oracle.set(key, "x")
        else:
            oracle.hset(key, "a", "b")
    producer.enqueue("work", "after")
    worker = start_worker(redis_server.url).started()
    wait_for("the job done", lambda: oracle.llen("steadfetch:queue:default") == 0)
    worker.wait_log(r"WARNING .*" + re.escape(next(iter(broken))))
    assert worker.stop() == 0, worker.log


def test_a_queue_name_holding_the_key_marker_does_not_make_a_live_workers_job_an_orphan(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer,
    record_path: Path,
) -> None:  # fmt: skip
    # was: steadfetch:processing:W:steadfetch:queue:x:steadfetch:queue:y split at the LAST
    # marker named worker 'W:steadfetch:queue:x' (unregistered, no heartbeat): another
    # worker's start-up sweep moved W's running job to queue y, where it ran a second time
    # while W still ran it
    queue = "x:steadfetch:queue:y"
    owner = start_worker(redis_server.url, "--queues", queue, "--worker-id", "W").started()
    producer.enqueue("work", "long", 2.0, queue=queue)
    wait_for("the job started", lambda: read_records(record_path))
    sweeper = start_worker(redis_server.url, "--queues", "y", "--worker-id", "V").started()
    wait_for("the job ended", lambda: len(read_records(record_path)) == 2)
    assert sweeper.stop() == 0 and owner.stop() == 0
    assert [r["event"] for r in read_records(record_path)] == ["start", "end"]
    assert "unregistered worker" not in sweeper.log


def test_enqueue_whose_id_cannot_be_written_says_the_job_is_enqueued(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    # was: stdout on a full disk (/dev/full): the job was enqueued, then print raised OSError:
    # CRITICAL "unexpected error" traceback and exit 1, read by a script as a failed enqueue
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [str(STEADFETCH), "enqueue", "work", "t", "--redis-url", redis_server.url],
            cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    (job,) = oracle.lrange("steadfetch:queue:default", 0, -1)
    job_id = json.loads(job)["id"]
    assert result.stderr == (
        f"job {job_id} was enqueued, but its id could not be written to stdout: "
        "No space left on device (do not enqueue it again)\n"
    )


def test_a_payload_whose_unique_window_is_a_huge_integer_does_not_stop_the_worker(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis, record_path: Path
) -> None:
    """A payload is JSON that anyone may write: "unique_for" as an integer too big for a double
    (kept exact by the decoder) made every read of the window raise OverflowError, at the ack's
    release of the id."""
    huge = "1" + "0" * 400
    payload = (
        '{"id":"big","task":"work","args":["big"],"kwargs":{},"queue":"steadfetch:queue:default",'
        f'"attempt":1,"enqueued_at":1,"unique_for":{huge}}}'
    )
    oracle.rpush("steadfetch:queue:default", payload)
    worker = start_worker(redis_server.url).started()
    after = run_cli("enqueue", "work", "after", "--redis-url", redis_server.url)
    assert after.returncode == 0, after.stderr
    ended = {"big", "after"}
    wait_for(
        "both jobs ended, or the worker",
        lambda: (
            worker.poll() is not None
            or ended <= {r["token"] for r in read_records(record_path) if r["event"] == "end"}
        ),
    )
    assert worker.stop() == 0, worker.log
    assert "processed=2 " in worker.log, worker.log
    assert oracle.llen("steadfetch:queue:default") == 0
