"""``enqueue``, ``status`` and ``dead-letter`` through the real binary against a real Redis."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import read_records, run_cli, wait_for


def run(
    url: str, *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--redis-url", url, stdin=stdin)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = run(url, *args)
    assert result.returncode == 0, result.stderr
    return result


def test_enqueue_formats_and_queues_reach_the_worker(
    redis_server: RedisServer, start_worker: StartWorker, record_path: Path, oracle: redis.Redis
) -> None:
    url = redis_server.url
    job_id = cli(url, "enqueue", "work", "plain", "--queue", "q1", "--job-id", "my-id").stdout
    assert job_id.strip() == "my-id"
    cli(url, "enqueue", "work", "from-resque", "--queue", "q2", "--resque")
    raw = oracle.lindex("resque:queue:q2", 0)
    resque = json.loads(raw)
    assert (resque["class"], resque["args"]) == ("work", ["from-resque"])
    assert oracle.sismember("resque:queues", "q2")
    cli(url, "enqueue", "work", "later", "--queue", "q1", "--delay", "0.5")
    cli(url, "enqueue", "work", "kw", "--kwargs", '{"seconds": 0}', "--queue", "q1")
    worker = start_worker(url, "--queues", "q1,resque:q2").started()
    wanted = {"plain", "from-resque", "later", "kw"}
    wait_for(
        "all four ran",
        lambda: {r["token"] for r in read_records(record_path) if r["event"] == "end"} == wanted,
    )
    assert worker.stop() == 0


def test_status_and_dead_letter_list_retry_purge(
    redis_server: RedisServer, start_worker: StartWorker, record_path: Path, oracle: redis.Redis
) -> None:
    url = redis_server.url
    cli(url, "enqueue", "fail", "dl-1", "--max-attempts", "1")
    cli(url, "enqueue", "fail", "dl-2", "--max-attempts", "1")
    cli(url, "enqueue", "work", "waiting", "--queue", "other")
    worker = start_worker(url, "--worker-id", "status-worker").started()
    wait_for("two dead letters", lambda: oracle.llen("steadfetch:dead") == 2)
    status = json.loads(cli(url, "status", "--json").stdout)
    assert status["dead"] == 2
    assert status["queues"]["other"] == 1
    assert [w["worker_id"] for w in status["workers"]] == ["status-worker"]
    text = cli(url, "status").stdout
    assert "dead-letter: 2" in text and "status-worker  connected" in text
    listed = [json.loads(line) for line in cli(url, "dead-letter", "list").stdout.splitlines()]
    assert sorted(e["error"] for e in listed) == [
        "ValueError: failing on purpose: dl-1",
        "ValueError: failing on purpose: dl-2",
    ]
    assert cli(url, "dead-letter", "retry", "--limit", "1").stdout.strip() == (
        "requeued 1 dead-lettered job(s)"
    )
    wait_for("the retried job failed again", lambda: len(read_records(record_path)) == 3)
    wait_for("dead again", lambda: oracle.llen("steadfetch:dead") == 2)
    assert cli(url, "dead-letter", "purge", "--yes").stdout.strip() == (
        "purged 2 dead-letter entries"
    )
    assert oracle.llen("steadfetch:dead") == 0
    assert worker.stop() == 0


def test_a_resque_queue_gets_resque_payloads_without_being_told(
    redis_server: RedisServer, oracle: redis.Redis, producer: SyncProducer
) -> None:
    """A steadfetch payload in resque:queue:NAME fails every Resque worker ('No job defined for
    class "undefined"'): the queue name decides the format, from the CLI and from Python."""
    cli(redis_server.url, "enqueue", "Resize", "640", "--queue", "resque:stats")
    producer.enqueue("Resize", 800, queue="resque:stats")
    bodies = [json.loads(raw) for raw in oracle.lrange("resque:queue:stats", 0, -1)]
    assert [(b["class"], b["args"]) for b in bodies] == [("Resize", [640]), ("Resize", [800])]
    assert all("task" not in b for b in bodies)
    assert oracle.smembers("resque:queues") == {b"stats"}
    with pytest.raises(ValueError, match="positional args only"):
        producer.enqueue("Resize", queue="resque:stats", width=640)
    assert oracle.llen("resque:queue:stats") == 2


def dead_job(oracle: redis.Redis, job_id: str) -> None:
    """A dead-letter entry as the worker writes one, for a job that failed its last attempt."""
    payload = json.dumps({"id": job_id, "task": "work", "args": [job_id], "kwargs": {},
                          "queue": "steadfetch:queue:default", "attempt": 3})  # fmt: skip
    oracle.rpush("steadfetch:dead", json.dumps({"queue": "steadfetch:queue:default",
                                                "raw": payload, "reason": "failed"}))  # fmt: skip


def test_dead_letter_retry_says_why_an_entry_stays_and_retries_one_job_by_id(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    url = redis_server.url
    dead_job(oracle, "job-a")
    dead_job(oracle, "job-b")
    oracle.rpush("steadfetch:dead", b"{not json")
    one = run(url, "dead-letter", "retry", "job-b")
    assert (one.returncode, one.stdout.strip()) == (0, "requeued 1 dead-lettered job(s)")
    assert [json.loads(r)["id"] for r in oracle.lrange("steadfetch:queue:default", 0, -1)] == [
        "job-b"
    ]
    missing = run(url, "dead-letter", "retry", "job-b")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "no dead-letter entry for job job-b"
    rest = run(url, "dead-letter", "retry")
    assert rest.returncode == 1
    assert rest.stdout.strip() == "requeued 1 dead-lettered job(s)"
    assert "1 entry could not be requeued and stay in the dead-letter list:" in rest.stderr
    assert "  an entry: the entry is not JSON" in rest.stderr
    assert oracle.lrange("steadfetch:dead", 0, -1) == [b"{not json"]


def test_dead_letter_retry_of_an_id_a_producer_enqueued_again_stays_and_says_why(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    """The binary end to end: the job is enqueued again (unique) after it died; the retry
    leaves the entry, exit 1, and says the id is reserved; the queue holds one job."""
    url = redis_server.url
    dead_job(oracle, "job-u")
    again = run(url, "enqueue", "work", "x", "--job-id", "job-u", "--unique-for", "0")
    assert again.returncode == 0, again.stderr
    retried = run(url, "dead-letter", "retry")
    assert retried.returncode == 1, retried.stderr
    assert "job job-u" in retried.stderr and "its id is reserved" in retried.stderr
    assert oracle.llen("steadfetch:queue:default") == 1 and oracle.llen("steadfetch:dead") == 1


def test_purge_asks_on_a_terminal_and_needs_yes_elsewhere(
    redis_server: RedisServer, oracle: redis.Redis
) -> None:
    url = redis_server.url
    dead_job(oracle, "job-a")
    refused = run(url, "dead-letter", "purge")
    assert refused.returncode == 2
    assert "pass --yes to confirm" in refused.stderr
    for answer, code, said in (("n", 1, "nothing deleted"), ("y", 0, "purged 1 dead-letter entry")):
        leader, follower = pty.openpty()
        try:
            os.write(leader, f"{answer}\n".encode())
            result = run(url, "dead-letter", "purge", stdin=follower)
        finally:
            os.close(leader)
            os.close(follower)
        assert result.returncode == code, result.stderr
        assert "delete 1 dead-letter entry? [y/N]" in result.stdout
        assert said in result.stdout
        assert oracle.llen("steadfetch:dead") == (1 if answer == "n" else 0)
