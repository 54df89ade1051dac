"""Side by side with the peers: ``python -m tests.bench peers [options]``.

``scripts/dev bench peers [options]`` runs it after the set-up.

Every Python peer runs from its own CLI, in its own virtualenv at pinned versions
(``tests/bench/peers/venvs.py``, created under ``.artifacts/peers/`` and reused); Sidekiq comes
from Debian (``apt-get install ruby-sidekiq ruby-gitlab-sidekiq-fetcher``). Each peer drains no-op
jobs enqueued through its own API, with one worker process and concurrency 50 where it has such a
setting, against the same fresh redis-server; steadfetch runs in the same repetition, in reliable
and fast mode. Per peer and repetition:

- drain jobs/s: N jobs queued, then N / (time from the worker's start until the peer's own
  bookkeeping says all N are done); a run whose check fails is reported failed, with what is
  missing;
- after-start jobs/s: N / (time from the first job leaving the queue until all N are done);
- enqueue jobs/s: N through the peer's API (its bulk call where it has one, else 100 calls in
  flight for async clients, one at a time for sync ones);
- peak RSS of the worker's process tree (summed, so a forking worker's shared pages count per
  process) and peak PSS (shared pages split; sampled every second and at the end); worker CPU
  per job (the tree's CPU from the first job leaving the queue to the last done, over N); Redis
  CPU per job (INFO cpu, from the worker's start to the last done, over N).

How "done" is known (each peer's own bookkeeping, read by a checker process that runs the
peer's own API, started and connected before the worker, so its start-up is not timed): arq,
saq, rq, taskiq, dramatiq (Results middleware) and Celery (Redis result backend) keep a record
per job, so each job id is checked; Sidekiq (``Sidekiq::Stats`` processed) and steadfetch (the
processed count in its heartbeats) keep a counter. Sidekiq flushes that counter and steadfetch
writes its heartbeat every 0.1 s in this benchmark (5 s by default), so the end is seen within
0.1 s; the per-record peers pay for writing a result per job, which is how they say a job is
done. No worker logs a line per job (rq ``--quiet``, arq's log dict, Sidekiq at WARN). CPU
comes from ``/proc`` in clock ticks (10 ms), so N should be large enough that a tick is small.

``--latency-ms [X]`` (1 ms without a value) puts one Toxiproxy proxy between the workers and
Redis with a downstream latency toxic: every reply to a worker is X ms late; enqueueing and
checking go direct. ``--restart`` starts each worker on its own redis-server with AOF, feeds
``recorded`` jobs (each appends its id to a file outside Redis) at ``--feed-rate``, and
``--restart-after`` seconds after the worker ran its first job stops Redis (SIGTERM, so the AOF
is complete) for ``--down-seconds``, starts it again on the same port, and keeps feeding for
``--feed-seconds``; then it waits up to ``--settle`` seconds for every accepted job. It reports
the time from Redis being back to the next job started, jobs accepted but not run within the
settle time (lost, or parked beyond it: Celery's Redis transport redelivers unacked jobs after
its visibility timeout, 1 h), jobs run twice, whether the worker process is alive, and the
first line it wrote after Redis went away. ``--idle-latency`` feeds 10 jobs/s to an idle worker
and reports enqueue-to-start p50/p99 (from the moment the enqueue call began to the moment the
job started, both in ``time.time()`` on this machine), leaving out the first second of work.

The raw redis-py ceiling (LPOP 100 at a time over the workers' path, so through Toxiproxy in
the latency mode) is printed as the physical reference. Results go to
``.artifacts/bench/peers-<time>/results.json`` (versions, machine, options, this text, every
repetition) and a printed table of medians (min-max) with steadfetch's ratio to the fastest
peer, the fastest Python peer and Sidekiq with reliable fetch, all of the same run; ``--plot``
draws RSS and throughput over time as PNG beside it. Every run is bounded in time and stops
every process it started, by pid, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from steadfetch.chaos.env.binaries import PROJECT_ROOT, ComponentMissing
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.toxiproxy import ToxiproxyError, ToxiproxyServer
from steadfetch.worker.redis_server import free_port
from tests.bench.peers import procs, results, venvs
from tests.bench.peers.peers import APPS, Peer, select
from tests.bench.peers.procs import Children

PLOT = Path(__file__).resolve().parent / "peers" / "plot.py"
POLL = 0.02  # s between samples of the worker's tree and the queue depth
PSS_EVERY = 1.0  # s between PSS samples (smaps_rollup is dearer than stat)
STALL = 10.0  # s with an empty queue and no progress before a run is declared failed
STUCK = 60.0  # s with jobs queued and none taken before a run is declared failed
RESTART_METRICS: dict[str, tuple[str, str, bool]] = {
    "recovery_s": ("Redis back -> next job done (s)", "{:.2f}", False),
    "lost": ("not run (lost)", "{:.0f}", False),
    "twice": ("run twice", "{:.0f}", False),
    "accepted": ("accepted", "{:.0f}", True),
}
LATENCY_METRICS: dict[str, tuple[str, str, bool]] = {
    "latency_p50_ms": ("idle enqueue-to-start p50 ms", "{:.2f}", False),
    "latency_p99_ms": ("p99 ms", "{:.2f}", False),
    "samples": ("samples", "{:.0f}", True),
}


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench peers", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="benchmark names (for tests.bench)")
    parser.add_argument("--jobs", type=int, default=100_000, help="N jobs per drain run")
    parser.add_argument(
        "--jobs-for",
        action="append",
        default=[],
        metavar="PEER=N",
        help="another N for one peer (rq-fork forks per job: 100k takes long)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of every peer")
    parser.add_argument("--only", help="comma-separated peers or prefixes (rq, celery, ...)")
    parser.add_argument(
        "--latency-ms",
        type=int,
        nargs="?",
        const=1,
        default=0,
        help="Toxiproxy between every worker and Redis, every reply this late (ms; 1 if no value)",
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--restart", action="store_true", help="the Redis-restart run instead")
    runs.add_argument(
        "--idle-latency",
        action="store_true",
        help="idle enqueue-to-start latency (a slow feed) instead",
    )
    parser.add_argument(
        "--feed-rate",
        type=float,
        help="jobs/s fed (default: 500 with --restart, 10 with --idle-latency)",
    )
    parser.add_argument(
        "--feed-seconds",
        type=float,
        help="seconds fed after the worker ran its first job, default 20 (--restart: after Redis "
        "is back, default 10)",
    )
    parser.add_argument(
        "--restart-after",
        type=float,
        default=4.0,
        help="restart Redis this long after the worker ran its first job (s)",
    )
    parser.add_argument("--down-seconds", type=float, default=2.0, help="Redis down this long")
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="restart run: s to wait for accepted jobs after the feed ends",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of one run (s)")
    parser.add_argument("--out", type=Path, help="results directory")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="drain runs: RSS and throughput over time as PNG (matplotlib, in a venv of its own)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.feed_rate is None:
        args.feed_rate = 500.0 if args.restart else 10.0
    if args.feed_seconds is None:
        args.feed_seconds = 10.0 if args.restart else 20.0
    try:
        args.jobs_for = {k: int(v) for k, v in (item.split("=", 1) for item in args.jobs_for)}
    except ValueError:
        parser.error(f"--jobs-for takes PEER=N, got {args.jobs_for}")
    return args


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops what it started."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _env(peer: Peer, url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.update(peer.env)
    env.update(BENCH_REDIS_URL=url, REDIS_URL=url, PYTHONPATH=str(APPS), PYTHONUNBUFFERED="1",
               **extra)  # fmt: skip
    return env


def _depth(client: redis.Redis, peer: Peer) -> int:
    if peer.queue_type == "zset":
        return int(client.zcard(peer.queue_key))
    return int(client.llen(peer.queue_key))


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class Series:
    """(seconds since the worker's start, RSS MiB, jobs still queued), one point per ``every``
    seconds; when it reaches MAX points it keeps every other one and doubles ``every``, so a
    1M-job run stays a few hundred KB of JSON."""

    MAX = 2000

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.points: list[tuple[float, float, int]] = []

    def add(self, t: float, rss: int, queued: int) -> None:
        if self.points and t - self.points[-1][0] < self.every:
            return
        self.points.append((round(t, 3), round(rss / 2**20, 2), queued))
        if len(self.points) >= self.MAX:
            self.points = self.points[::2]
            self.every *= 2


def _check(checker: procs.Child) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(checker.ask("check", 120))
    return answer


def drain_run(peer: Peer, kids: Children, server_port: int, worker_url: str, jobs: int,
              timeout: float, logs: Path, rep: int) -> dict[str, Any]:  # fmt: skip
    """One drain of ``jobs`` no-op jobs by ``peer``: its metrics, or why it failed."""
    direct = f"redis://127.0.0.1:{server_port}/0"
    client = redis.Redis(port=server_port, socket_timeout=30)
    out: dict[str, Any] = {"peer": peer.name, "rep": rep, "jobs": jobs, "ok": False,
                           "error": None}  # fmt: skip
    log = logs / f"{peer.name}-{rep}.log"
    checker = worker = None
    try:
        client.flushall()
        client.config_resetstat()
        env = _env(peer, direct)
        checker = kids.start(f"{peer.name} check", peer.script_argv("check", str(jobs)),
                             env=env, cwd=APPS, log_path=log, pipes=True)  # fmt: skip
        json.loads(checker.read_line(120))  # {"ready": true}: imported and connected
        line = kids.run(f"{peer.name} enqueue", peer.script_argv("enqueue", str(jobs)),
                        env=env, cwd=APPS, log_path=log, timeout=timeout)  # fmt: skip
        out["enqueue_jobs_per_s"] = jobs / json.loads(line)["seconds"]
        if (queued := _depth(client, peer)) != jobs:
            raise RuntimeError(f"{queued} jobs in {peer.queue_key} after enqueuing {jobs}")
        redis_cpu0 = _redis_cpu(client)
        began = time.time()
        deadline = time.monotonic() + timeout
        worker = kids.start(peer.name, peer.worker_argv(worker_url),
                            env=_env(peer, worker_url), cwd=APPS, log_path=log)  # fmt: skip
        peak, first, stall, moved = 0, None, (-1, time.monotonic()), (jobs, time.monotonic())
        peak_pss, pss_at = 0, 0.0
        series = Series()
        while True:
            rss, cpu = procs.sample(worker.pid)
            peak = max(peak, rss)
            if time.monotonic() - pss_at >= PSS_EVERY:
                peak_pss, pss_at = max(peak_pss, procs.pss(worker.pid)), time.monotonic()
            if not worker.alive:
                raise RuntimeError(f"worker exited {worker.popen.returncode}: {worker.log_tail()}")
            depth = _depth(client, peer)
            series.add(time.time() - began, rss, depth)
            if first is None and depth < jobs:
                first = (time.time(), cpu)
            if depth != moved[0]:
                moved = (depth, time.monotonic())
            elif depth and time.monotonic() - moved[1] > STUCK:
                raise RuntimeError(f"no job taken from the queue for {STUCK:.0f} s, {depth} "
                                   f"queued: {worker.log_tail()}")  # fmt: skip
            if depth == 0:
                answer = _check(checker)
                if answer["missing"] == 0:
                    ended, cpu_end = answer["t"], procs.sample(worker.pid)[1]
                    peak_pss = max(peak_pss, procs.pss(worker.pid))
                    break
                if answer["missing"] != stall[0]:
                    stall = (answer["missing"], time.monotonic())
                elif time.monotonic() - stall[1] > STALL:
                    raise RuntimeError(f"queue empty, {answer['missing']} jobs not done after "
                                       f"{STALL:.0f} s (e.g. {answer['sample']})")  # fmt: skip
            if time.monotonic() > deadline:
                answer = _check(checker)
                raise RuntimeError(
                    f"not done within {timeout:.0f} s: {answer['missing']} missing "
                    f"(e.g. {answer['sample']}), {depth} queued"
                )
            time.sleep(POLL)
        start_t, start_cpu = first or (began, 0.0)
        out.update(
            ok=answer["failed"] == 0,
            error=f"{answer['failed']} jobs failed" if answer["failed"] else None,
            drain_jobs_per_s=jobs / (ended - began),
            steady_jobs_per_s=jobs / max(1e-6, ended - start_t),
            peak_rss_mib=peak / 2**20,
            peak_pss_mib=peak_pss / 2**20,
            series=series.points,
            worker_cpu_us_per_job=(cpu_end - start_cpu) / jobs * 1e6,
            redis_cpu_us_per_job=(_redis_cpu(client) - redis_cpu0) / jobs * 1e6,
        )
    except (RuntimeError, TimeoutError, OSError, ValueError, KeyError, redis.RedisError) as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc}"
    finally:
        for child in (worker, checker):
            if child is not None:
                child.stop()
        client.close()
    out["log"] = str(log)
    return out


def ceiling_run(port: int, url: str, jobs: int) -> float:
    """The physical reference: RPUSH ``jobs`` 100-byte items, then LPOP 100 at a time over
    ``url`` (the worker's path, so through Toxiproxy in the latency mode); jobs/s of the pops."""
    filler = redis.Redis(port=port)
    filler.delete("ceiling")
    for start in range(0, jobs, 10_000):
        filler.rpush("ceiling", *[b"x" * 100] * min(10_000, jobs - start))
    client = redis.Redis.from_url(url, socket_timeout=30)
    began, taken = time.perf_counter(), 0
    while batch := client.lpop("ceiling", 100):
        taken += len(batch)
    elapsed = time.perf_counter() - began
    client.close()
    filler.close()
    return taken / elapsed


def fed_run(peer: Peer, kids: Children, args: argparse.Namespace, logs: Path, rep: int,
            proxy_url: Any) -> dict[str, Any]:  # fmt: skip
    """Feed ``peer`` ``recorded`` jobs at a steady rate; with ``args.restart``, restart Redis (AOF
    on) under it. Every accepted job is then looked for in the executions file, which lives
    outside Redis: lost, run twice, and (idle latency) enqueue-to-start times."""
    out: dict[str, Any] = {"peer": peer.name, "rep": rep, "ok": False, "error": None}
    kind = "restart" if args.restart else "latency"
    log = logs / f"{peer.name}-{kind}-{rep}.log"
    record, accepted_file = logs / f"{peer.name}-{rep}.executed", logs / f"{peer.name}-{rep}.ids"
    server = RedisServer(appendonly=args.restart)
    worker = feeder = None
    try:
        server.start()
        url = proxy_url(server.port) if proxy_url else server.url
        worker = kids.start(peer.name, peer.worker_argv(url), cwd=APPS, log_path=log,
                            env=_env(peer, url, BENCH_RECORD=str(record)))  # fmt: skip
        feeder = kids.start(f"{peer.name} feed", peer.script_argv(
            "feed", str(args.feed_rate), str(args.timeout), str(accepted_file)),
            env=_env(peer, server.url), cwd=APPS, log_path=log, pipes=True)  # fmt: skip
        _wait_first_execution(record, worker, args.timeout)
        back, fed_from = 0.0, time.monotonic()
        if args.restart:
            time.sleep(args.restart_after)
            offset = log.stat().st_size
            server.stop()
            time.sleep(args.down_seconds)
            server.start()
            back, fed_from = time.time(), time.monotonic()
        time.sleep(max(0.0, fed_from + args.feed_seconds - time.monotonic()))
        accepted_file.with_name(accepted_file.name + ".stop").touch()
        feeder.read_line(args.timeout)
        accepted = _accepted(accepted_file)
        deadline = time.monotonic() + args.settle
        while not accepted.keys() <= _executions(record).keys() and time.monotonic() < deadline:
            time.sleep(0.2)
        runs = _executions(record)
        lost = sorted(accepted.keys() - runs.keys(), key=lambda i: int(i[1:]))
        out.update(accepted=len(accepted), lost=len(lost), lost_sample=lost[:5],
                   twice=sum(1 for times in runs.values() if len(times) > 1),
                   survived=worker.alive, exit_code=worker.popen.returncode)  # fmt: skip
        problems = [] if worker.alive else ["worker died"]
        problems += [f"{len(lost)} not run {args.settle:.0f} s after the feed"] if lost else []
        if args.restart:
            after = [t for times in runs.values() for t in times if t >= back]
            out.update(recovery_s=(min(after) - back) if after else None,
                       outage_log_line=_first_line(log, offset))  # fmt: skip
            problems += [] if after else ["no job done after Redis came back"]
        else:
            out.update(_latencies(accepted, runs))
        out["ok"] = not problems
        out["error"] = "; ".join(problems) or None
    except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc}"
    finally:
        for child in (feeder, worker):
            if child is not None:
                child.stop()
        server.close()
    out["log"] = str(log)
    return out


def _wait_first_execution(record: Path, worker: procs.Child, timeout: float) -> None:
    """Until the worker ran a job: a restart must hit a worker at work, not one still booting."""
    deadline = time.monotonic() + timeout
    while not (record.exists() and record.stat().st_size):
        if not worker.alive or time.monotonic() > deadline:
            raise RuntimeError(f"no job run before the restart: {worker.log_tail()}")
        time.sleep(0.05)


def _accepted(path: Path) -> dict[str, float]:
    """Accepted ids -> the time their (last) enqueue call began, from the feeder's file."""
    found: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                found[parts[0]] = float(parts[1])
    return found


def _executions(record: Path) -> dict[str, list[float]]:
    """Every id the worker ran -> the times it started running it."""
    runs: dict[str, list[float]] = {}
    if record.exists():
        for line in record.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                runs.setdefault(parts[0], []).append(float(parts[1]))
    return runs


def _latencies(accepted: dict[str, float], runs: dict[str, list[float]]) -> dict[str, Any]:
    """Enqueue-to-start p50/p99 over the jobs enqueued once the worker had started working (the
    first second of the feed may have waited for the worker's start-up, so it is left out)."""
    if not runs:
        return {"latency_p50_ms": None, "latency_p99_ms": None, "samples": 0}
    warm = min(t for times in runs.values() for t in times) + 1.0
    ms = sorted((min(runs[i]) - t) * 1000 for i, t in accepted.items() if i in runs and t >= warm)
    if not ms:
        return {"latency_p50_ms": None, "latency_p99_ms": None, "samples": 0}
    return {
        "latency_p50_ms": ms[len(ms) // 2],
        "latency_p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "samples": len(ms),
    }


def _first_line(log: Path, offset: int) -> str | None:
    """The first non-empty line the worker wrote after ``offset`` (when Redis went away); for a
    traceback, its first line and the exception line that ends it."""
    with log.open("rb") as f:
        f.seek(offset)
        lines = [raw.decode(errors="replace").rstrip() for raw in f if raw.strip()]
    if not lines:
        return None
    first = lines[0].strip()
    if first.startswith("Traceback"):
        ending = next((x for x in lines[1:] if not x.startswith((" ", "\t"))), "")
        first = f"{first} ... {ending.strip()}"
    return first[:400]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    return {"cores": os.cpu_count(), "cpu": model, "platform": platform.platform(),
            "python": platform.python_version(), "load_average": os.getloadavg()}  # fmt: skip


def versions(peers: list[Peer]) -> dict[str, Any]:
    """What ran: each venv's pins and ``pip freeze``, Debian's Sidekiq packages, redis-server,
    Toxiproxy, and the steadfetch commit (``-dirty`` when the work tree had changes)."""
    found: dict[str, Any] = {}
    for runtime in sorted({p.runtime for p in peers} & set(venvs.PINS)):
        found[runtime] = {"pins": list(venvs.PINS[runtime]), "installed": venvs.freeze(runtime)}
    if any(p.runtime == "ruby" for p in peers):
        found["sidekiq"] = _output(
            [
                "dpkg-query",
                "-W",
                "-f",
                "${Package} ${Version}\\n",
                *venvs.SIDEKIQ_PACKAGES,
                "ruby-redis",
            ]
        ).splitlines()
        found["ruby"] = _output(["ruby", "--version"])
    found["redis-server"] = _output(["redis-server", "--version"])
    found["steadfetch"] = _output(
        ["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"]
    )
    return found  # fmt: skip


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc.__class__.__name__}: {exc})"


def _prepare(peers: list[Peer]) -> list[Peer]:
    ready = []
    for peer in peers:
        try:
            peer.prepare()
            ready.append(peer)
        except (venvs.VenvError, ComponentMissing) as exc:
            print(f"  skipping {peer.name}: {exc}", flush=True)
    return ready


def main(argv: list[str]) -> None:
    try:
        _main(argv)
    except (ComponentMissing, ToxiproxyError) as exc:  # everything started is stopped by now
        sys.exit(f"bench peers: {exc.__class__.__name__}: {exc}")


def _main(argv: list[str]) -> None:
    args = _options(argv)
    peers = _prepare(select(args.only))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or PROJECT_ROOT / ".artifacts" / "bench" / f"peers-{stamp}"
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mode = "restart" if args.restart else "idle-latency" if args.idle_latency else "drain"
    doc: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": mode, "machine": machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "method": __doc__, "versions": versions(peers),
        "peers": {p.name: {"worker": list(p.worker), "note": p.note} for p in peers},
        "repetitions": [], "ceiling_jobs_per_s": [],
    }  # fmt: skip
    print(f"peers benchmark ({mode}), {len(peers)} peers, {args.repeat} repetition(s), "
          f"latency {args.latency_ms} ms, load average {doc['machine']['load_average']}",
          flush=True)  # fmt: skip
    with _terminate_as_exit(), Children() as kids:
        toxi = ToxiproxyServer().start() if args.latency_ms else None
        try:
            if toxi is not None:
                doc["versions"]["toxiproxy"] = toxi.api.version()
            for rep in range(args.repeat):
                proxy_url = _proxy_factory(toxi, args.latency_ms, rep) if toxi else None
                if args.restart or args.idle_latency:
                    for peer in peers:
                        _show(doc, fed_run(peer, kids, args, logs, rep, proxy_url))
                    continue
                with RedisServer() as server:
                    url = proxy_url(server.port) if proxy_url else server.url
                    for peer in peers:
                        jobs = args.jobs_for.get(peer.name, args.jobs)
                        _show(doc, drain_run(peer, kids, server.port, url, jobs, args.timeout,
                                             logs, rep))  # fmt: skip
                    doc["ceiling_jobs_per_s"].append(ceiling_run(server.port, url, args.jobs))
                    print(f"  raw redis-py LPOP 100 ceiling: "
                          f"{doc['ceiling_jobs_per_s'][-1]:,.0f} jobs/s", flush=True)  # fmt: skip
        finally:
            if toxi is not None:
                toxi.close()
    metrics = {"restart": RESTART_METRICS, "idle-latency": LATENCY_METRICS,
               "drain": results.DRAIN_METRICS}[mode]  # fmt: skip
    doc["summary"] = results.aggregate(doc["repetitions"], metrics)
    doc["ratios"] = results.headline_ratios(doc["summary"]) if mode == "drain" else {}
    doc["machine"]["load_average_end"] = os.getloadavg()
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    print(results.table(doc["summary"], metrics))
    if args.restart:
        for rep in doc["repetitions"]:
            print(f"{rep['peer']} rep {rep['rep']}: worker "
                  f"{'survived' if rep.get('survived') else 'DIED'}; first line after Redis went "
                  f"away: {rep.get('outage_log_line')}")  # fmt: skip
    ceiling = results.summarize(doc["ceiling_jobs_per_s"])
    if ceiling:
        print(f"raw redis-py ceiling (LPOP 100): {results.cell(ceiling, '{:,.0f}')} jobs/s")
    print(f"results: {out_dir / 'results.json'}", flush=True)
    if args.plot and mode == "drain":
        python = venvs.ensure("plot")
        subprocess.run([str(python), str(PLOT), str(out_dir / "results.json"), str(out_dir)],
                       check=True, timeout=300)  # fmt: skip


def _proxy_factory(toxi: ToxiproxyServer, latency_ms: int, rep: int) -> Any:
    """A function: Redis port -> URL through a new Toxiproxy proxy with the latency toxic."""
    count = [0]

    def make(port: int) -> str:
        count[0] += 1
        listen = free_port()
        proxy = toxi.api.create_proxy(f"redis-{rep}-{count[0]}", f"127.0.0.1:{listen}",
                                      f"127.0.0.1:{port}")  # fmt: skip
        proxy.add_toxic("latency", stream="downstream", latency=latency_ms)
        return f"redis://127.0.0.1:{listen}/0"

    return make


def _show(doc: dict[str, Any], rep: dict[str, Any]) -> None:
    doc["repetitions"].append(rep)
    shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in rep.items()
             if k not in ("peer", "log", "rep", "series")}  # fmt: skip
    print(f"  {rep['peer']:20} rep {rep['rep']}: {shown}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
