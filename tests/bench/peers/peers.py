"""What differs per peer: its interpreter, its worker CLI, and the queue it drains.

Everything else (enqueue, feed, the done check) goes through the peer-side script
``apps/<app>`` run with the peer's own interpreter, so it uses the peer's own API.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.bench.peers import venvs

APPS = Path(__file__).resolve().parent / "apps"
PROJECT_BIN = Path(sys.executable).parent  # the project's .venv/bin (steadfetch's CLI)
CONCURRENCY = "50"


@dataclass(frozen=True)
class Peer:
    """One worker configuration. In ``worker``, ``{bin}`` is the interpreter's directory and
    ``{url}`` the Redis URL the worker must use (through Toxiproxy in the latency mode)."""

    name: str
    runtime: str  # a key of venvs.PINS, "steadfetch" (the project's venv) or "ruby"
    app: str  # the peer-side script in apps/
    worker: tuple[str, ...]
    queue_key: str
    queue_type: Literal["list", "zset"] = "list"
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def interpreter(self) -> list[str]:
        if self.runtime == "ruby":
            return ["ruby"]
        if self.runtime == "steadfetch":
            return [sys.executable]
        return [str(venvs.python(self.runtime))]

    def bin_dir(self) -> Path:
        if self.runtime == "ruby":
            return Path("/usr/bin")
        return Path(self.interpreter()[0]).parent

    def worker_argv(self, url: str) -> list[str]:
        return [a.format(bin=self.bin_dir(), url=url) for a in self.worker]

    def script_argv(self, *args: str) -> list[str]:
        return [*self.interpreter(), str(APPS / self.app), *args]

    def prepare(self) -> None:
        """Create the peer's venv when missing (Ruby peers: check the Debian packages)."""
        if self.runtime in venvs.PINS:
            venvs.ensure(self.runtime)
        elif self.runtime == "ruby":
            venvs.ensure_sidekiq()


_CELERY = ("{bin}/celery", "-A", "celery_app", "worker", "-c", CONCURRENCY, "--without-heartbeat",
           "--without-mingle", "--without-gossip", "-l", "WARNING", "-P")  # fmt: skip
_SIDEKIQ = ("/usr/bin/ruby", "{bin}/sidekiq", "-r", "./sidekiq_app.rb", "-c", CONCURRENCY,
            "-q", "default", "-e", "production")  # fmt: skip
_STEADFETCH = ("{bin}/steadfetch", "run", "steadfetch_app:app", "--redis-url", "{url}",
               "--concurrency", CONCURRENCY, "--heartbeat-interval", "0.1", "--mode")  # fmt: skip

PEERS: tuple[Peer, ...] = (
    Peer("arq", "arq", "arq_app.py", ("{bin}/arq", "arq_app.WorkerSettings", "--custom-log-dict",
         "arq_app.LOG"), "arq:queue",
         "zset", note="max_jobs=50"),
    Peer("saq", "saq", "saq_app.py", ("{bin}/saq", "saq_app.settings", "--workers", "1"),
         "saq:default:queued", note="concurrency=50"),
    Peer("rq-simple", "rq", "rq_app.py", ("{bin}/rq", "worker", "--url", "{url}", "-w",
         "rq.worker.SimpleWorker", "--quiet", "default"), "rq:queue:default",
         note="one job at a time, in the worker process"),
    Peer("rq-fork", "rq", "rq_app.py", ("{bin}/rq", "worker", "--url", "{url}", "--quiet",
         "default"),
         "rq:queue:default", note="one job at a time, a fork per job"),
    Peer("taskiq", "taskiq", "taskiq_app.py", ("{bin}/taskiq", "worker", "taskiq_app:broker",
         "--workers", "1", "--max-async-tasks", CONCURRENCY, "--log-level", "WARNING"), "taskiq",
         note="ListQueueBroker + RedisAsyncResultBackend, max-async-tasks 50"),
    Peer("dramatiq", "dramatiq", "dramatiq_app.py", ("{bin}/dramatiq", "dramatiq_app",
         "--processes", "1", "--threads", CONCURRENCY), "dramatiq:default",
         note="RedisBroker, 1 process x 50 threads, Results middleware"),
    Peer("celery-prefork", "celery", "celery_app.py", (*_CELERY, "prefork"), "celery",
         note="-P prefork -c 50, Redis result backend"),
    Peer("celery-threads", "celery", "celery_app.py", (*_CELERY, "threads"), "celery",
         note="-P threads -c 50, Redis result backend"),
    Peer("sidekiq-basic", "ruby", "sidekiq_app.rb", _SIDEKIQ, "queue:default",
         env={"BENCH_RELIABLE": "0"}, note="Sidekiq 6.4 BasicFetch (BRPOP), -c 50"),
    Peer("sidekiq-reliable", "ruby", "sidekiq_app.rb", _SIDEKIQ, "queue:default",
         env={"BENCH_RELIABLE": "1"}, note="GitLab reliable fetch, -c 50"),
    Peer("steadfetch-reliable", "steadfetch", "steadfetch_app.py", (*_STEADFETCH, "reliable"),
         "steadfetch:queue:default", note="--concurrency 50 --mode reliable"),
    Peer("steadfetch-fast", "steadfetch", "steadfetch_app.py", (*_STEADFETCH, "fast"),
         "steadfetch:queue:default", note="--concurrency 50 --mode fast"),
)  # fmt: skip
BY_NAME = {p.name: p for p in PEERS}


def select(spec: str | None) -> list[Peer]:
    """Peers named in a comma-separated ``spec`` (a prefix such as ``rq`` or ``celery`` picks
    every peer it starts); all of them when ``spec`` is empty."""
    if not spec:
        return list(PEERS)
    chosen: list[Peer] = []
    for part in (s.strip() for s in spec.split(",") if s.strip()):
        matches = [p for p in PEERS if p.name == part or p.name.startswith(part + "-")]
        if not matches:
            raise SystemExit(f"unknown peer {part!r}; known: {', '.join(BY_NAME)}")
        chosen += [p for p in matches if p not in chosen]
    return chosen
