"""The worker: fetch → run in a sliding window → ack, supervised, with a deadline-bound shutdown.

The methods of :class:`Worker` read in the order they run:

    run → _serve → _start → _fetch_loop → _runner → _run_job → _succeeded / _failed
        → _heartbeat_loop / _scheduler_loop / _recovery_loop / _watchdog_loop
        → _stop (drain with a deadline → cancel → flush acks → requeue → unregister → one line)

Every coroutine lives in one TaskGroup: an unexpected exception in any loop cancels the rest
and leaves :meth:`run` with that exception (the CLI logs the traceback and exits 1), so no loop
can die silently and leave a "catatonic" worker behind.

One job's path, top to bottom (``tests/worker/test_job_path.py`` imports every name below):

Fetch
  1. worker.worker.Worker._fetch_loop          asks for the window's free capacity
  2. worker.window.JobWindow.wait_for_space    ... which blocks until a slot is free
  3. fetcher.fetch.Fetcher.fetch               adopts orphans first, then takes or blocks
  4. fetcher.fetch.Fetcher._take               one FETCH script call (fetcher/lua/fetch.lua)
  5. fetcher.connection.RedisConnection.execute    runs it, retrying through an outage
  6. fetcher.fetch.Fetcher._accept             decodes each payload (undecodable: dead-lettered)
  7. fetcher.codec.decode                      payload bytes -> fetcher.job.Job
  8. worker.window.JobWindow.put               hands the jobs to the runners
Run
  9. worker.worker.Worker._runner              one per slot: worker.window.JobWindow.take
 10. worker.worker.Worker._run_job             contains any failure of this job's own path
 11. worker.worker.Worker._run_and_settle      task lookup, worker.app.Task.check_arguments,
                                               the handler under its timeout (sync handlers:
                                               worker.threads.SyncRunner.run)
Ack (success)
 12. worker.worker.Worker._succeeded           the job keeps its slot until the ack is sent
 13. worker.acks.AckBatcher.add / worker.acks.AckBatcher.flush    batches acks
 14. fetcher.fetch.Fetcher.ack_many            one ACK script call (fetcher/lua/ack.lua), then
                                               fetcher.unique.release; worker.worker.Worker._acked
                                               frees the slots
Retry or dead-letter (failure)
 12. worker.worker.Worker._failed              worker.app.Task.retry_plan decides limit and delay
 13. fetcher.fetch.Fetcher.nack                last attempt: fetcher.deadletter.entry; else
                                               fetcher.scheduling.job_backoff and
                                               fetcher.codec.reencode_for_retry
 14. fetcher.fetch.Fetcher._settle / fetcher.fetch.Fetcher._move_out    one SETTLE script call
                                               (fetcher/lua/settle.lua) to dead or scheduled
 15. worker.worker.Worker._scheduler_loop      later: fetcher.fetch.Fetcher.promote_due
                                               (fetcher.scheduling.promote_due) puts the due
                                               retry back on its queue, and the path restarts
Unknown task or bad arguments: worker.worker.Worker._dead_letter ->
fetcher.fetch.Fetcher.dead_letter.
A failure in the job's own path: worker.worker.Worker._contain (dead-letters it, worker goes on).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fetcher import (
    Admin,
    ConnectionEvent,
    ConnectionRestored,
    ConnectionState,
    Fetcher,
    FetcherError,
    Job,
    RedisConnection,
    WrongTypeError,
)
from fetcher.state import stats_fields
from worker import __version__
from worker.acks import AckBatcher
from worker.app import App
from worker.cancellation import cancel_and_wait, checkpoint, finish_by
from worker.config import WorkerConfig
from worker.http import HealthServer
from worker.metrics import metrics_registry
from worker.shutdown import Shutdown
from worker.stats import WorkerStats
from worker.threads import SyncRunner
from worker.window import JobWindow, PrefetchSizer

log = logging.getLogger("worker")

#: Part of the grace period kept for giving jobs back and unregistering (at most this many s).
CLEANUP_RESERVE = 2.0
#: A forced (second-signal) exit still tries this long to give jobs back.
FORCED_CLEANUP = 1.0
#: The adaptive prefetch holds at most this many payload bytes beyond the running jobs (and at
#: most WorkerConfig.prefetch_ceiling jobs; see worker.window.PrefetchSizer).
PREFETCH_MAX_BYTES = 16 * 1024 * 1024
#: The recovery loop sweeps for orphaned processing lists every this many passes (and at start).
SWEEP_EVERY = 8


class JobTimeout(TimeoutError):
    """A handler ran longer than its task's (or the worker's default) job timeout."""


#: Longest exception message kept in a log line or a dead-letter entry (user code may raise
#: one of any size; the traceback is summarised separately).
ERROR_TEXT_MAX_CHARS = 2000


def error_text(error: BaseException) -> str:
    """``ValueError: message`` for a log line or a dead-letter entry; bounded, and never raises,
    even for an exception whose ``__str__`` does (user code)."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001  (any failure of user code's __str__ is the same to us)
        message = "<str() of the exception failed>"
    if len(message) > ERROR_TEXT_MAX_CHARS:
        message = f"{message[:ERROR_TEXT_MAX_CHARS]}... ({len(message)} characters)"
    return f"{type(error).__name__}: {message}"


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """One worker process' main object. ``await Worker(...).run()`` returns the exit code."""

    def __init__(
        self,
        app: App,
        config: WorkerConfig,
        conn: RedisConnection,
        *,
        worker_id: str | None = None,
        on_started: Callable[[Worker], None] | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.conn = conn
        self.worker_id = worker_id or config.worker_id or default_worker_id()
        self.fetcher = Fetcher(
            conn,
            self.worker_id,
            list(config.queues),
            mode=config.mode,
            block_timeout=config.block_timeout,
            heartbeat_ttl=config.heartbeat_ttl,
            retry_base=config.job_retry_base,
            retry_cap=config.job_retry_cap,
        )
        self.shutdown = Shutdown()
        self.window: JobWindow[Job] = JobWindow(config.concurrency, config.effective_prefetch)
        self.prefetch = PrefetchSizer(
            config.effective_prefetch,
            config.prefetch_ceiling,
            PREFETCH_MAX_BYTES,
            # A batch's reply (and the ack carrying its payloads) should take at most a quarter
            # of the read timeout on this link, never the whole of it.
            transfer_seconds=config.read_timeout / 4 if config.read_timeout else None,
        )
        self.acks: AckBatcher[Job] = AckBatcher(self.fetcher.ack_many, self._acked)
        self.stats = WorkerStats()
        self.stats.identity = {
            "worker_id": self.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "queues": list(config.queues),
            "mode": config.mode,
            "concurrency": config.concurrency,
        }
        self.stats.live = self._live_stats
        self.stats.dead_lettered_below = lambda: self.fetcher.dead_lettered
        # The last job that failed, for the heartbeat (top's "last error"): (unix s, line).
        self._last_job_error: tuple[float, str] | None = None
        self.stats.safety = self._safety_stats
        self.admin = Admin(conn)
        # Queue, scheduled and dead-letter counts as of the last heartbeat (for the heartbeat
        # itself, `top` and the live dashboard); refreshed with every beat, never per job.
        self._depths: dict[str, Any] = {}
        self.started = asyncio.Event()
        self._on_started = on_started
        self._threads = SyncRunner(config.concurrency)
        # One slot per runner: the job it is running now (bounded by N, never grows).
        self._current: list[Job | None] = [None] * config.concurrency
        self._runners: list[asyncio.Task[None]] = []
        # Watchdog bookkeeping: when the current fetch began (None: not inside a fetch).
        self._fetch_since: float | None = None
        self._fetch_scope: asyncio.Timeout | None = None
        self._stalled: str | None = None
        self.stalls = 0
        self._last_beat = time.monotonic()
        # When the heartbeat loop last woke up later than the heartbeat TTL (frozen process,
        # blocked event loop): other workers may have taken this one for dead (unix s).
        self._beat_stalled_at: float | None = None
        # Redis's maxmemory-policy as last read (fetcher.Admin.eviction_policy); read again
        # after every reconnect (a restarted Redis may come back with another config).
        self._eviction: dict[str, Any] = {}
        self._eviction_due = True
        conn.subscribe(self._on_connection_event)

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} {self.config.mode} {self.window!r} {self.conn!r}>"

    # -- run ----------------------------------------------------------------------------------

    async def run(self) -> int:
        """Work until a signal (or :meth:`Shutdown.request`); return the exit code."""
        with self.shutdown.signal_handlers():
            try:
                await self._serve()
            finally:
                self._threads.close()
                await self.conn.close()
        return self.shutdown.exit_code

    async def _serve(self) -> None:
        async with asyncio.TaskGroup() as tg:
            fetching = tg.create_task(self._fetch_loop(), name="fetch")
            running = tg.create_task(self._run_window(), name="runners")
            services = [
                tg.create_task(self.acks.run(), name="acks"),
                tg.create_task(self._heartbeat_loop(), name="heartbeat"),
                tg.create_task(self._scheduler_loop(), name="scheduler"),
                tg.create_task(self._recovery_loop(), name="recovery"),
                tg.create_task(self._watchdog_loop(), name="watchdog"),
            ]
            if self.config.metrics_port is not None:
                server = HealthServer(
                    self,
                    metrics_registry(self.stats.snapshot),
                    self.config.metrics_host,
                    self.config.metrics_port,
                )
                services.append(tg.create_task(server.serve(), name="http"))
            await self.shutdown.requested.wait()
            await self._stop(fetching, running, services)

    async def _start(self) -> None:
        """Claim the worker id, recover dead workers' jobs, check Redis's eviction policy, say
        so. Retries forever while Redis is down. A live process holding the same worker id (a
        twin) makes registration raise ConfigurationError: exit 2, naming the holder."""
        await self.fetcher.register()
        await self.fetcher.recover_dead_workers(sweep=True)  # one line, naming the dead
        await self.fetcher.heartbeat(self.stats.snapshot(), self._heartbeat_ttl)
        await self._check_eviction_policy()
        config = self.config
        floor, ceiling = config.effective_prefetch, config.prefetch_ceiling
        log.info(
            "worker %s started: queues [%s], concurrency %d (prefetch %s), %s mode, Redis %s",
            self.worker_id,
            ", ".join(config.queues),
            config.concurrency,
            f"{floor}" if floor == ceiling else f"adaptive, {floor} to {ceiling}",
            config.mode,
            self.conn.endpoint,
        )
        self._last_beat = time.monotonic()
        self.started.set()
        if self._on_started is not None:
            self._on_started(self)

    async def _fetch_loop(self) -> None:
        """Ask for exactly the free capacity; block in the fetcher when the queues are empty.
        The next fetch goes out as soon as a slot is free, while jobs run, and the window's
        prefetch is sized (Little's law) so that the jobs in hand outlast its round trip."""
        await self._start()
        window, fetch, sizer = self.window, self.fetcher.fetch, self.prefetch
        loop = asyncio.get_running_loop()
        while True:
            wanted = await window.wait_for_space()
            self._fetch_since = began = loop.time()
            scope = self._fetch_scope = asyncio.timeout(None)
            try:
                async with scope:
                    jobs = await fetch(wanted)
            except TimeoutError:
                if not scope.expired():  # not the watchdog's: a real error from below
                    raise
                log.warning("fetch interrupted by the watchdog; fetching again")
                continue
            finally:
                self._fetch_scope = None
                self._fetch_since = None
            if self._stalled is not None:
                log.warning("fetch loop is making progress again")
                self._stalled = None
            if jobs:
                took = loop.time() - began
                size = sum(len(job.raw) for job in jobs)
                sizer.fetched(len(jobs), size, took, complete=len(jobs) == wanted)
                window.put(jobs)
                # Let the runners start these jobs before the next fetch's request is built
                # and sent: one loop turn, and idle enqueue-to-start latency drops.
                await asyncio.sleep(0)

    def _acked(self, count: int, seconds: float) -> None:
        """An ack batch went out: free its slots, and resize the prefetch from its round trip."""
        self.prefetch.acked(count, seconds, time.monotonic())
        self.window.resize(self.prefetch.prefetch)
        self.window.acked(count)

    async def _run_window(self) -> None:
        """N runners, each taking the next job as soon as its last one ended."""
        async with asyncio.TaskGroup() as runners:
            self._runners = [
                runners.create_task(self._runner(slot), name=f"runner-{slot}")
                for slot in range(self.config.concurrency)
            ]

    async def _runner(self, slot: int) -> None:
        window, current = self.window, self._current
        while (job := await window.take()) is not None:
            current[slot] = job
            try:
                await self._run_job(job)
            finally:
                current[slot] = None
                window.release()
            # The handler is user code and may have caught our CancelledError and returned:
            # stop here anyway. (Redis calls need no such check: RedisConnection.execute
            # re-raises a cancel that redis-py lost, see fetcher.cancellation.)
            checkpoint()

    async def _run_job(self, job: Job) -> None:
        """Run one job and settle it. A failure in this job's own path (argument check, retry
        re-encode, backoff, a settle into a key of the wrong type, or any unexpected exception
        there) dead-letters the job with the reason and the worker goes on. Only a genuine
        configuration error (a shared key, auth, permissions) or an outage reaches the loops."""
        try:
            await self._run_and_settle(job)
        except WrongTypeError as exc:  # a key this job's settle writes to: the job's problem
            await self._contain(job, exc)
        except FetcherError:
            raise
        except Exception as exc:  # noqa: BLE001  (one job's bug must not stop the worker)
            await self._contain(job, exc)

    async def _contain(self, job: Job, exc: Exception) -> None:
        """Dead-letter ``job`` after an unexpected failure in its own path; one log line (the
        traceback goes into the dead-letter entry). If even that fails, the worker stops."""
        text = error_text(exc)
        reason = f"the worker could not process or settle this job: {text}"
        tb = "".join(traceback.format_exception(exc))
        await self.fetcher.dead_letter(job, reason, error=text, traceback_text=tb)
        self.stats.dead_lettered += 1
        log.error(
            "job %s (task %s) dead-lettered: %s (traceback in the dead-letter entry)",
            job.id,
            job.task,
            reason,
            extra={"task": job.task, "job_id": job.id, "attempt": job.attempt, "outcome": "dead"},
        )

    async def _run_and_settle(self, job: Job) -> None:
        task = self.app.get(job.task)
        if task is None:
            known = ", ".join(sorted(t.name for t in self.app)) or "none"
            await self._dead_letter(job, f"unknown task {job.task!r} (this worker knows: {known})")
            return
        problem = task.check_arguments(job.args, job.kwargs)
        if problem is not None:
            await self._dead_letter(job, problem)
            return
        timeout = task.timeout or self.config.job_timeout
        scope = asyncio.timeout(timeout)
        started = time.perf_counter()
        try:
            async with scope:
                if task.is_async:
                    await task.handler(*job.args, **job.kwargs)
                else:
                    await self._threads.run(task.handler, job.args, job.kwargs)
        except BaseException as exc:  # a cancel of this very task is re-raised below
            # The handler's failure is the job's outcome: a handler calling sys.exit() or raising
            # KeyboardInterrupt (signals reach the worker's handlers, never user code),
            # GeneratorExit or a library's own BaseException ends its job, not the worker, and
            # one raising CancelledError of its own (nobody cancelled this task) must not end
            # its runner (N such jobs would leave no runner at all).
            current = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and (
                current is None or current.cancelling()
            ):
                raise
            error: BaseException = exc
            if isinstance(exc, TimeoutError) and scope.expired():
                error = JobTimeout(f"job exceeded its timeout of {timeout:g} s")
                if not task.is_async:
                    log.warning(
                        "job %s (task %s) timed out in a thread; the thread keeps running until "
                        "the handler returns (threads cannot be cancelled)",
                        job.id,
                        job.task,
                    )
            await self._failed(job, error, time.perf_counter() - started)
        else:
            self._succeeded(job, time.perf_counter() - started)

    def _succeeded(self, job: Job, seconds: float) -> None:
        self.stats.processed += 1
        self.stats.record_duration(seconds)
        self.window.hold()  # the job keeps its slot until the ack is sent
        self.acks.add(job)

    async def _failed(self, job: Job, error: BaseException, seconds: float) -> None:
        self.stats.failed += 1
        self.stats.record_duration(seconds)
        tb = "".join(traceback.format_exception(error))
        text = error_text(error)
        task = self.app.get(job.task)
        fetcher, default_max = self.fetcher, self.config.max_attempts
        limit, delay = (
            task.retry_plan(job, max_attempts=default_max, retry_base=fetcher.retry_base,
                            retry_cap=fetcher.retry_cap)
            if task else (job.max_attempts or default_max, None)
        )  # fmt: skip
        outcome = await self.fetcher.nack(job, text, tb, delay=delay, max_attempts=limit)
        self._note_job_error(job, text)
        if outcome == "dead":
            self.stats.dead_lettered += 1
        else:
            self.stats.retried += 1
        log.error(
            "job %s (task %s, attempt %d/%d) failed: %s; %s\n%s",
            job.id,
            job.task,
            job.attempt,
            limit,
            text,
            "dead-lettered (last attempt)" if outcome == "dead" else "will be retried",
            tb.rstrip(),
            extra={"task": job.task, "job_id": job.id, "attempt": job.attempt, "outcome": outcome},
        )

    async def _dead_letter(self, job: Job, reason: str) -> None:
        await self.fetcher.dead_letter(job, reason)
        self.stats.dead_lettered += 1
        self._note_job_error(job, reason)
        log.error(
            "job %s (task %s) dead-lettered: %s",
            job.id,
            job.task,
            reason,
            extra={"task": job.task, "job_id": job.id, "attempt": job.attempt, "outcome": "dead"},
        )

    def _note_job_error(self, job: Job, error: str) -> None:
        self._last_job_error = (time.time(), f"job {job.id} (task {job.task}): {error}"[:300])

    # -- services -----------------------------------------------------------------------------

    @property
    def _heartbeat_ttl(self) -> float:
        return self.config.heartbeat_ttl

    def _live_stats(self) -> dict[str, Any]:
        return {
            "in_flight": self.window.running,
            "connection_state": self.conn.state.value,
            **stats_fields(self.conn.stats),
            "last_job_error": self._last_job_error and self._last_job_error[1],
            "last_job_error_at": self._last_job_error and self._last_job_error[0],
            **self._depths,
        }

    def _safety_stats(self) -> dict[str, Any]:
        """Ownership counters, stuck threads and the eviction policy, for beats and /metrics."""
        ownership = self.fetcher.ownership
        return {
            **ownership.counters(),
            "presumed_dead_at": ownership.presumed_dead_at,
            "failovers": self.conn.failovers,
            "primary": self.conn.primary,
            "stuck_threads": self._threads.stuck,
            "eviction_policy": self._eviction.get("policy"),
        }

    def _on_connection_event(self, event: ConnectionEvent) -> None:
        if isinstance(event, ConnectionRestored):
            self._eviction_due = True

    async def _check_eviction_policy(self) -> None:
        """Read maxmemory-policy; WARN when Redis may evict jobs or when it cannot be checked."""
        self._eviction_due = False
        self._eviction = await self.admin.eviction_policy()
        if not self._eviction.get("safe"):
            log.warning("%s", self._eviction["note"])

    async def _heartbeat_loop(self) -> None:
        """Beat at a fixed rate: a slow link must not stretch the gaps between beats (a gap
        longer than the TTL makes other workers take this one for dead and requeue its jobs).

        A wake-up later than the TTL means this process was frozen (SIGSTOP, a paused VM) or its
        event loop blocked: that is said at once. The beat itself then finds out whether this
        worker was presumed dead (fetcher.registry: WARNING, counted, rejoined)."""
        await self.started.wait()
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.config.heartbeat_interval, loop.time())
            await asyncio.sleep(due - loop.time())
            late = loop.time() - due
            if late > self._heartbeat_ttl:
                self._beat_stalled_at = time.time()
                log.warning(
                    "worker %s: heartbeat loop stalled for %.1f s, past the heartbeat TTL of "
                    "%.1f s (process frozen or event loop blocked): other workers may have taken "
                    "it for dead and recovered its jobs",
                    self.worker_id,
                    late + self.config.heartbeat_interval,
                    self._heartbeat_ttl,
                )
            began = loop.time()
            await self.fetcher.heartbeat(self.stats.snapshot(), self._heartbeat_ttl)
            self._last_beat = time.monotonic()
            if self._eviction_due:
                await self._check_eviction_policy()
            # For the next beat (and the dashboard): after the write, so it never delays one;
            # skipped when the write itself was slow (a slow link), where one more round trip
            # would push the next beat toward the TTL.
            if loop.time() - began < self.config.heartbeat_interval / 2:
                self._depths = await self.admin.depths(self.config.queues)

    async def _scheduler_loop(self) -> None:
        """Move due retries and delayed jobs into their queues."""
        await self.started.wait()
        while True:
            promoted = await self.fetcher.promote_due()
            if promoted:
                log.debug("promoted %d due jobs", promoted)
            await asyncio.sleep(self.config.scheduler_interval)

    async def _recovery_loop(self) -> None:
        """Give dead workers' jobs back to their queues (also done once at start). Every
        :data:`SWEEP_EVERY` passes, also sweep for processing lists that no registered worker
        owns (a SCAN of the keyspace: what a zombie fetched and then died with)."""
        await self.started.wait()
        passes = 0
        while True:
            await asyncio.sleep(self.config.recovery_interval)
            passes += 1
            # Logs one line naming the dead workers, when it found any.
            await self.fetcher.recover_dead_workers(sweep=passes % SWEEP_EVERY == 0)

    async def _watchdog_loop(self) -> None:
        """Notice a fetch that cannot still be legitimately running, say so, reset, fetch again.

        A fetch blocks at most ``block_timeout`` server-side and the client gives up after its
        read timeout; during an outage every attempt fails within its timeouts and the next one
        is scheduled (``retry_next_at``). A fetch older than the limit is stuck when the
        connection claims to be CONNECTED, or when it is RECONNECTING but no attempt has ended
        for longer than the limit (a retry that hangs on a half-open socket with no read
        timeout): exactly the silent lock-up operators saw. Each stuck fetch is reset once; the
        fetch that replaces it is judged afresh, so a hang that repeats is reset again.
        """
        limit = self.config.effective_watchdog_timeout
        if limit == 0:
            log.warning(
                "watchdog disabled (--watchdog-timeout 0): a stuck fetch loop will go unnoticed. "
                "This is unsafe and meant only for chaos proofs."
            )
            return
        loop = asyncio.get_running_loop()
        period = min(1.0, limit / 4)
        reset_since: float | None = None  # the _fetch_since of the fetch last reset
        awake_since = loop.time()  # time this process spent frozen is nobody's fault
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            if loop.time() - due > period:
                # This loop itself woke up late: the process was frozen (SIGSTOP, a VM pause) or
                # the event loop blocked. A fetch did not hang meanwhile; judge it from now on.
                awake_since = loop.time()
                continue
            since = self._fetch_since
            if since is None or since == reset_since:
                continue
            stuck_for = loop.time() - max(since, awake_since)
            why = self._stuck_because(limit) if stuck_for > limit else None
            if why is None:
                continue
            reset_since = since
            self.stalls += 1
            self._stalled = (
                f"fetch from queues [{', '.join(self.config.queues)}] made no progress for "
                f"{stuck_for:.1f} s (limit {limit:.1f} s = block timeout + read timeout + margin) "
                f"{why}"
            )
            log.error("watchdog: %s; resetting the connection and fetching again", self._stalled)
            await self.conn.reset()
            scope = self._fetch_scope
            if scope is not None and not scope.expired():
                scope.reschedule(loop.time())

    def _stuck_because(self, limit: float) -> str | None:
        """Why a fetch older than ``limit`` cannot still be legitimate, or None if it can."""
        state, stats = self.conn.state, self.conn.stats
        if state is ConnectionState.CONNECTED:
            return f"while Redis {self.conn.endpoint} counted as connected"
        if state is ConnectionState.RECONNECTING:
            # The last attempt began when its wait ended (or, before any wait, when it failed).
            began = stats.retry_next_at or stats.last_error_at
            if began is not None and (silent := time.time() - began) > limit:
                return (
                    f"while Redis {self.conn.endpoint} was reconnecting and no attempt had ended "
                    f"for {silent:.1f} s (a retry hanging on a half-open connection)"
                )
        return None

    # -- probes (for worker.http) -------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        if self.shutdown.requested.is_set():
            return False, "shutting down"
        if not self.started.is_set():
            return False, f"starting; Redis {self.conn.state.value}"
        if self.conn.state is not ConnectionState.CONNECTED:
            return (
                False,
                f"Redis {self.conn.endpoint} {self.conn.state.value}: {self.conn.stats.last_error}",
            )
        return True, "ready"

    def healthy(self) -> tuple[bool, str]:
        """Unhealthy when the fetch loop is stuck (watchdog), heartbeats stopped while Redis
        counts as connected, more sync handler threads are stuck than there are spares, or,
        for one heartbeat TTL after the fact, when the heartbeat loop stalled past its TTL or
        this worker found it had been presumed dead. An outage alone is not unhealthy:
        restarting would not help."""
        if self._stalled is not None:
            return False, self._stalled
        threads_ok, threads_why = self._threads.health()
        if not threads_ok:
            return False, threads_why
        ttl, now = self._heartbeat_ttl, time.time()
        ownership = self.fetcher.ownership
        presumed = ownership.presumed_dead_at
        if presumed is not None and now - presumed < ttl:
            return False, (
                f"presumed dead {now - presumed:.1f} s ago: its lease expired and its jobs were "
                f"recovered elsewhere ({ownership.presumed_dead} time(s) so far, "
                f"{ownership.late_settles} late settle(s) fenced off); rejoined with a fresh lease"
            )
        stalled = self._beat_stalled_at
        if stalled is not None and now - stalled < ttl:
            return False, (
                f"heartbeat loop stalled past the heartbeat TTL of {ttl:.1f} s "
                f"{now - stalled:.1f} s ago (process frozen or event loop blocked)"
            )
        config = self.config
        beat_limit = (
            3 * config.heartbeat_interval + config.redis_retry_cap + config.read_timeout + 1.0
        )
        silent_for = time.monotonic() - self._last_beat
        connected = self.conn.state is ConnectionState.CONNECTED
        if self.started.is_set() and connected and silent_for > beat_limit:
            return False, (
                f"heartbeat loop made no progress for {silent_for:.1f} s (limit {beat_limit:.1f} s)"
                f" while Redis {self.conn.endpoint} counted as connected"
            )
        return True, "loops progressing"

    # -- stop ---------------------------------------------------------------------------------

    async def _stop(
        self,
        fetching: asyncio.Task[None],
        running: asyncio.Task[None],
        services: list[asyncio.Task[None]],
    ) -> None:
        """Stop fetching now, drain within the grace period, give back what is left, unregister."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.config.grace_period
        fetching.cancel()
        self.window.close()
        if self.window.running:
            log.info(
                "waiting up to %.1f s for %d running jobs (%d unstarted go back to their queue)",
                max(0.0, deadline - loop.time() - self._cleanup_reserve),
                self.window.running,
                self.window.buffered,
            )
        await self._drain(running, until=deadline - self._cleanup_reserve)
        interrupted = [job for job in self._current if job is not None]
        if not running.done():
            reason = "second signal" if self.shutdown.forced.is_set() else "grace period over"
            log.warning("cancelling %d running jobs (%s)", len(interrupted), reason)
            # Handlers are user code: one may catch the CancelledError and await again, and
            # cancelling `running` reaches the runners only once (TaskGroup): re-cancel them.
            await cancel_and_wait([*self._runners, running])
        # Our own loops stop on one cancel: a cancel that redis-py loses inside a Redis call
        # is re-raised by RedisConnection.execute (fetcher.cancellation).
        for task in (fetching, *services):
            task.cancel()
        await asyncio.wait([fetching, *services])
        if not self.started.is_set():
            log.info("worker %s stopped before it started: nothing was taken", self.worker_id)
            return
        if self.shutdown.forced.is_set():
            deadline = min(deadline, loop.time() + FORCED_CLEANUP)
        # Started jobs were fetched before the unstarted ones: keep that order at the head.
        await self._give_back(interrupted + self.window.drain(), deadline)
        log.info(
            "worker %s stopped after running %.1f s (shutdown took %.1f s): %s",
            self.worker_id,
            time.time() - self.stats.started_at,
            loop.time() - began,
            self.stats.counter_line(),
        )

    async def _drain(self, running: asyncio.Task[None], *, until: float) -> None:
        """Wait until the running jobs end, the loop time ``until`` passes or a second signal
        arrives.

        ``running`` is only watched, never cancelled here: the caller decides what happens to
        jobs still running. The second-signal watcher is owned by a TaskGroup, so it is gone
        when this returns, whichever way it ends."""
        try:
            async with asyncio.timeout_at(until), asyncio.TaskGroup() as watchers:
                forced = watchers.create_task(self.shutdown.forced.wait(), name="forced")
                await asyncio.wait([running, forced], return_when=asyncio.FIRST_COMPLETED)
                forced.cancel()
        except TimeoutError:
            pass  # grace period over: the caller cancels what still runs

    def _outage_cause(self) -> str:
        """What the current outage looks like, for a log line: the last failed attempt's
        exception, or, when no attempt has failed yet (a frozen server: no reply, no error
        before the deadline), that."""
        stats = self.conn.stats
        if self.conn.state is ConnectionState.RECONNECTING and stats.last_cause:
            down = time.time() - (stats.outage_since or time.time())
            return f"{stats.last_cause}; attempt {stats.attempts}, down {down:.1f} s"
        return "TimeoutError no reply before the grace deadline"

    @property
    def _cleanup_reserve(self) -> float:
        return min(CLEANUP_RESERVE, self.config.grace_period * 0.2)

    async def _give_back(self, jobs: list[Job], deadline: float) -> None:
        """Flush acks, requeue unfinished jobs, unregister; each bounded by ``deadline``.

        When Redis is unreachable until the deadline, the jobs stay in this worker's processing
        list (reliable mode); another worker recovers them once this heartbeat expires.
        """
        loop = asyncio.get_running_loop()
        steps: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = [
            ("acking finished jobs", self.acks.flush)
        ]
        if self.config.mode == "reliable":  # unregister gives back what the lists hold
            steps.append(("requeueing unfinished jobs and unregistering", self.fetcher.unregister))
        else:
            if jobs:
                steps.append(
                    ("requeueing unfinished jobs", functools.partial(self.fetcher.requeue, jobs))
                )
            steps.append(("unregistering", self.fetcher.unregister))
        for what, step in steps:
            finished, result = await finish_by(
                step(),
                max(deadline, loop.time() + 0.05),
                hurry=self.shutdown.forced,
                hurry_within=FORCED_CLEANUP,
            )
            if not finished:
                log.error(
                    "shutdown: Redis %s unreachable while %s (%s); gave up at the grace deadline. "
                    "%s",
                    self.conn.endpoint,
                    what,
                    self._outage_cause(),
                    "Unfinished jobs stay in this worker's processing list and will be recovered "
                    "by the next worker once this worker's heartbeat expires"
                    if self.config.mode == "reliable"
                    else f"{len(jobs)} fast-mode jobs are lost",
                )
                return
            if what.startswith("requeueing"):
                self.stats.requeued = result if isinstance(result, int) else len(jobs)
