"""``steadfetch run --processes N`` with the real binary: restarts, signals, orphans, exit 2."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.workload.process import STEADFETCH
from steadfetch.fetcher import SyncProducer
from steadfetch.worker.supervisor import process_count, without_processes
from tests.worker.conftest import StartWorker
from tests.worker.harness import (
    APP,
    ROOT,
    WorkerUnderTest,
    clean_env,
    http_get,
    read_records,
    wait_for,
)

QUEUE = "steadfetch:queue:default"
CHILD_STARTED = r"worker process (\d+) \((\S+)\) started: pid (\d+)"


def child_pids(supervisor: WorkerUnderTest) -> dict[int, int]:
    """The latest pid of each child, from the supervisor's log."""
    pids: dict[int, int] = {}
    for match in re.finditer(CHILD_STARTED, supervisor.log):
        pids[int(match.group(1))] = int(match.group(3))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped yet) still answers kill(0): read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def tokens_with(record_path: Path, event: str) -> set[str]:
    return {r["token"] for r in read_records(record_path) if r["event"] == event}


def running_jobs(
    producer: SyncProducer, record_path: Path, count: int, seconds: float, *, what: str
) -> list[str]:
    """Enqueue ``count`` jobs of ``seconds`` each and wait until all have started; the tokens."""
    tokens = [f"job-{i}" for i in range(count)]
    producer.enqueue_many({"task": "work", "args": (t, seconds)} for t in tokens)
    wait_for(what, lambda: len(tokens_with(record_path, "start")) >= count)
    return tokens


def start_supervisor(start_worker: StartWorker, url: str, *flags: str) -> WorkerUnderTest:
    supervisor = start_worker(url, "--processes", "2", "--concurrency", "5", *flags)
    supervisor.wait_log(r"worker \S+-0 started")
    supervisor.wait_log(r"worker \S+-1 started")
    return supervisor


def test_processes_flag_parsing() -> None:
    assert process_count("auto") == len(os.sched_getaffinity(0))
    assert process_count("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            process_count(bad)
    argv = ["run", "app:x", "--processes", "2", "--proc=3", "--queues", "a", "--processes=auto"]
    assert without_processes(argv) == ["run", "app:x", "--queues", "a"]


def test_metrics_ports_beyond_65535_are_a_usage_error_before_any_child(
    start_worker: StartWorker,
) -> None:
    flags = ["--processes", "2", "--metrics-port", "65535"]
    supervisor = start_worker("redis://127.0.0.1:1/0", *flags)
    assert supervisor.wait() == 2
    assert "needs ports 65535..65536" in supervisor.log
    assert "worker process" not in supervisor.log


def test_a_child_killed_mid_batch_is_restarted_under_its_id_and_loses_nothing(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    tokens = [f"job-{i}" for i in range(200)]
    # 200 x 0.1 s over 2 x 5 slots: ~2 s of work, so the kill lands mid-way.
    producer.enqueue_many({"task": "work", "args": (t, 0.1)} for t in tokens)
    supervisor = start_supervisor(start_worker, redis_server.url)
    wait_for("some jobs done", lambda: len(tokens_with(record_path, "start")) >= 30)
    victim = child_pids(supervisor)[0]
    os.kill(victim, signal.SIGKILL)
    supervisor.wait_log(r"worker process 0 \(\S+, pid \d+\) killed by SIGKILL after [\d.]+ s; "
                        r"restarting it in [\d.]+ s \(restart 1\)")  # fmt: skip
    # The new process takes the id over at once (its predecessor's pid is gone) and adopts
    # the jobs left in its processing lists: no waiting for a heartbeat to expire.
    supervisor.wait_log(r"worker process 0 \(\S+\) started: pid \d+ \(restart 1\)")
    supervisor.wait_log(r"worker id \S+-0 was held by .*, which is no longer running; taking it")
    wait_for("every job finished", lambda: tokens_with(record_path, "end") >= set(tokens))
    assert supervisor.stop() == 0
    assert child_pids(supervisor)[0] != victim
    assert oracle.llen(QUEUE) == 0
    assert oracle.keys("steadfetch:processing:*") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_drains_every_child_and_exits_zero(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
    sig: signal.Signals,
) -> None:
    """SIGHUP was: the supervisor stopped, its children were not told and ran on until the
    backstop SIGKILLed them (exit 1, their jobs cut); now it drains them as SIGTERM does."""
    supervisor = start_supervisor(start_worker, redis_server.url)
    tokens = running_jobs(producer, record_path, 6, 1.0, what="jobs running in both children")
    pids = child_pids(supervisor)
    supervisor.signal(sig)
    if sig == signal.SIGHUP:
        supervisor.wait_log("shutdown requested", count=3)  # the supervisor and both children
        supervisor.signal(sig)  # a hangup is never "stop at once"
    assert supervisor.wait() == 0, supervisor.log
    assert "killing it" not in supervisor.log
    # The running jobs finished inside the grace period (not cancelled and requeued).
    assert tokens_with(record_path, "end") == set(tokens)
    assert len(re.findall(r"worker \S+-\d stopped after running", supervisor.log)) == 2
    assert "every worker process exited 0" in supervisor.log
    assert not any(alive(pid) for pid in pids.values())
    assert oracle.smembers("steadfetch:workers") == set()


def test_a_second_signal_is_forwarded_and_the_supervisor_exits_128_plus_signum(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    supervisor = start_supervisor(start_worker, redis_server.url, "--grace-period", "30")
    running_jobs(producer, record_path, 4, 3600, what="jobs running")
    supervisor.signal(signal.SIGINT)
    supervisor.wait_log("shutdown requested", count=3)  # the supervisor and both children
    supervisor.signal(signal.SIGINT)
    assert supervisor.wait() == 130
    # Cancelled jobs went back to their queue: nothing held, nothing lost.
    assert oracle.llen(QUEUE) == 4
    assert oracle.keys("steadfetch:processing:*") == []


def test_children_shut_down_gracefully_when_the_supervisor_is_sigkilled(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    supervisor = start_supervisor(start_worker, redis_server.url)
    tokens = running_jobs(producer, record_path, 4, 2.0, what="jobs running")
    pids = child_pids(supervisor)
    supervisor.signal(signal.SIGKILL)
    supervisor.wait()
    wait_for("no orphan left", lambda: not any(alive(pid) for pid in pids.values()))
    # They drained: the running jobs finished and both unregistered (a graceful stop), and
    # said so on the supervisor's stderr, which they inherited.
    assert tokens_with(record_path, "end") == set(tokens)
    assert len(re.findall(r"worker \S+-\d stopped after running", supervisor.log)) == 2
    assert "shutdown requested (the supervisor (pid " in supervisor.log
    assert oracle.smembers("steadfetch:workers") == set()
    assert oracle.keys("steadfetch:processing:*") == []


def test_a_child_exiting_2_stops_the_supervisor_with_exit_2_and_its_line(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    with RedisServer(password="s3cret") as server:
        supervisor = start_worker(f"redis://127.0.0.1:{server.port}/0", "--processes", "2")
        assert supervisor.wait() == 2
    log = supervisor.log
    line = re.search(r"worker process \d \(\S+\) exited 2 \(configuration error\), not "
                     r"restarting it; stopping the supervisor: (.*)", log)  # fmt: skip
    assert line is not None, log
    assert "cannot continue" in line.group(1)
    assert "restarting it in" not in log


def test_a_hung_child_is_killed_after_the_grace_period_and_the_exit_is_1(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    supervisor = start_supervisor(start_worker, redis_server.url, "--grace-period", "1")
    hung = child_pids(supervisor)[1]
    os.kill(hung, signal.SIGSTOP)
    assert supervisor.stop() == 1
    assert re.search(
        r"worker process 1 \(\S+, pid \d+\) still running [\d.]+ s after", supervisor.log
    )
    assert not alive(hung)


def test_processes_from_the_environment_start_plain_workers_each_with_its_own_port(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    # STEADFETCH_PROCESSES reaches the supervisor only: a child that inherited it would start
    # a supervisor of its own, and so on.
    supervisor = start_worker(
        redis_server.url, "--metrics-port", "0", env={"STEADFETCH_PROCESSES": "2"}
    )
    supervisor.wait_log(r"worker \S+-0 started")
    supervisor.wait_log(r"worker \S+-1 started")
    wait_for(
        "both children serving", lambda: len(re.findall("metrics and health", supervisor.log)) == 2
    )
    ports = [
        int(p)
        for p in re.findall(r"metrics and health on http://127\.0\.0\.1:(\d+)", supervisor.log)
    ]
    assert len(set(ports)) == 2
    for port in ports:
        assert http_get(port, "/readyz")[0] == 200
    ids = {member.decode() for member in oracle.smembers("steadfetch:workers")}
    assert {i.rsplit("-", 1)[1] for i in ids} == {"0", "1"}
    assert len(re.findall("starting 2 worker processes", supervisor.log)) == 1
    assert supervisor.stop() == 0


def test_restarts_back_off_exponentially_and_a_signal_during_the_backoff_ends_it(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    supervisor = start_supervisor(start_worker, redis_server.url)
    for restart, delay in ((1, "0.5"), (2, "1.0"), (3, "2.0")):
        if restart > 1:
            supervisor.wait_log(r"worker \S+-0 started", count=restart)
        os.kill(child_pids(supervisor)[0], signal.SIGKILL)
        supervisor.wait_log(
            rf"worker process 0 \(\S+, pid \d+\) killed by SIGKILL after [\d.]+ s; "
            rf"restarting it in {delay} s \(restart {restart}\)"
        )
    # SIGTERM inside the 2 s wait: no third restart, the other child drains, exit 0.
    assert supervisor.stop() == 0
    assert "(restart 3)" not in re.sub(r"restarting it in .*", "", supervisor.log)
    assert not any(alive(pid) for pid in child_pids(supervisor).values())


def test_a_log_line_longer_than_the_relay_limit_is_passed_on_in_pieces(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
) -> None:
    supervisor = start_supervisor(start_worker, redis_server.url, "--log-format", "json")
    # Twice in the traceback of a chained exception (the error message itself is capped at
    # 2000 characters): one JSON line of ~1.4 MB, over the relay's 1 MiB limit.
    token = "x" * 700_000
    producer.enqueue("fail_chained", token, max_attempts=1)
    supervisor.wait_log("dead-lettered", timeout=30)
    # "dead-lettered" is in the line's first piece: wait for the rest of it to be relayed.
    wait_for("the whole line relayed", lambda: supervisor.log.count(token) >= 2 or None)
    assert supervisor.poll() is None
    assert supervisor.log.count(token) >= 2
    assert supervisor.stop() == 0


def test_a_closed_stderr_does_not_stop_the_supervisor(
    redis_server: RedisServer, producer: SyncProducer, record_path: Path
) -> None:
    env = clean_env(STEADFETCH_TEST_RECORD=str(record_path))
    argv = [str(STEADFETCH), "run", APP, "--redis-url", redis_server.url, "--processes", "2"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        seen = b""
        while seen.count(b" started: queues") < 2:
            chunk = proc.stderr.read1(65536)
            assert chunk, seen.decode(errors="replace")
            seen += chunk
        proc.stderr.close()  # whoever read our logs is gone
        producer.enqueue("fail", "loud", max_attempts=1)  # an ERROR line with a traceback
        producer.enqueue_many({"task": "work", "args": (f"job-{i}",)} for i in range(20))
        wait_for("the jobs after it", lambda: len(tokens_with(record_path, "end")) == 20)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def free_port_pair() -> int:
    """A port P with P and P+1 free just now (each child binds its own later)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return int(port)
    raise AssertionError("no two consecutive free ports")


def test_with_a_metrics_port_process_i_serves_on_port_plus_i(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    port = free_port_pair()
    supervisor = start_supervisor(start_worker, redis_server.url, "--metrics-port", str(port))
    for i in (0, 1):
        supervisor.wait_log(rf"metrics and health on http://127\.0\.0\.1:{port + i} ")
        wait_for(f"/readyz of process {i}", lambda i=i: http_get(port + i, "/readyz")[0] == 200)
        status, body = http_get(port + i, "/metrics")
        assert status == 200 and "steadfetch_processed_total" in body
    assert supervisor.stop() == 0
