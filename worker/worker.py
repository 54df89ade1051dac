"""The worker: fetch → run in a sliding window → ack, supervised, with a deadline-bound shutdown.

The methods of :class:`Worker` read in the order they run:

    run → _serve → _start → _fetch_loop → _runner → _run_job → _succeeded / _failed
        → the heartbeat (worker.heartbeat) / _scheduler_loop / _recovery_loop / the watchdog
          (worker.watchdog)
        → _stop (drain with a deadline → cancel → flush acks → requeue → unregister → one line;
          the bounded steps are in worker.shutdown)

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
 14. fetcher.fetch.Fetcher._settle / fetcher.settle.Settler.move_out    one SETTLE script call
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
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from steadfetch.fetcher import (
    ConnectionState,
    Fetcher,
    FetcherError,
    Job,
    RedisConnection,
    WrongTypeError,
)
from steadfetch.fetcher.state import stats_fields
from steadfetch.worker import __version__
from steadfetch.worker.acks import AckBatcher
from steadfetch.worker.app import App
from steadfetch.worker.cancellation import cancel_and_wait, checkpoint
from steadfetch.worker.config import WorkerConfig
from steadfetch.worker.heartbeat import Heartbeat
from steadfetch.worker.http import HealthServer
from steadfetch.worker.metrics import metrics_registry
from steadfetch.worker.shutdown import Shutdown, cleanup_reserve, drain, give_back
from steadfetch.worker.stats import WorkerStats
from steadfetch.worker.threads import SyncRunner
from steadfetch.worker.watchdog import FetchWatchdog
from steadfetch.worker.window import JobWindow, PrefetchSizer

log = logging.getLogger("worker")

#: Running jobs named in the SIGUSR1 state line; the rest are counted.
STATE_JOBS_SHOWN = 5
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
        self.shutdown = Shutdown(self._state_line)
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
        self.started = asyncio.Event()
        self.heartbeat = Heartbeat(self.fetcher, config, self.stats.snapshot, self.started)
        self._on_started = on_started
        self._threads = SyncRunner(config.concurrency)
        # One slot per runner: the job it is running now (bounded by N, never grows).
        self._current: list[Job | None] = [None] * config.concurrency
        self._runners: list[asyncio.Task[None]] = []
        self.watchdog = FetchWatchdog(conn, config.queues, config.effective_watchdog_timeout)

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
                tg.create_task(self.heartbeat.run(), name="heartbeat"),
                tg.create_task(self._scheduler_loop(), name="scheduler"),
                tg.create_task(self._recovery_loop(), name="recovery"),
                tg.create_task(self.watchdog.run(), name="watchdog"),
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
        await self.heartbeat.first()  # and the eviction policy check
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
        self.started.set()
        if self._on_started is not None:
            self._on_started(self)

    async def _fetch_loop(self) -> None:
        """Ask for exactly the free capacity; block in the fetcher when the queues are empty.
        The next fetch goes out as soon as a slot is free, while jobs run, and the window's
        prefetch is sized (Little's law) so that the jobs in hand outlast its round trip."""
        await self._start()
        window, fetch, sizer = self.window, self.fetcher.fetch, self.prefetch
        watchdog, loop = self.watchdog, asyncio.get_running_loop()
        while True:
            wanted = await window.wait_for_space()
            began = loop.time()
            try:
                with watchdog.watching() as scope:
                    async with scope:
                        jobs = await fetch(wanted)
            except TimeoutError:
                if not scope.expired():  # not the watchdog's: a real error from below
                    raise
                log.warning("fetch interrupted by the watchdog; fetching again")
                continue
            watchdog.progressed()
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
        window, current, fetcher = self.window, self._current, self.fetcher
        while (job := await window.take()) is not None:
            current[slot] = job
            try:
                # A job fetched before a freeze past the TTL may have been recovered and run
                # elsewhere meanwhile: the lease is confirmed before it starts (rarely needed).
                if fetcher.in_doubt() and not await fetcher.still_held(job):
                    log_not_started(job)
                else:
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

    def _live_stats(self) -> dict[str, Any]:
        return {
            "in_flight": self.window.running,
            "connection_state": self.conn.state.value,
            **stats_fields(self.conn.stats),
            "last_job_error": self._last_job_error and self._last_job_error[1],
            "last_job_error_at": self._last_job_error and self._last_job_error[0],
            **self.heartbeat.depths,
        }

    def _state_line(self) -> str:
        """The line SIGUSR1 logs (worker.shutdown): phase, the jobs in the slots (the first
        :data:`STATE_JOBS_SHOWN`), the window, the connection and the counters."""
        running = [job for job in self._current if job is not None]
        shown = ", ".join(f"{job.task} {job.id}" for job in running[:STATE_JOBS_SHOWN])
        if len(running) > STATE_JOBS_SHOWN:
            shown += f" and {len(running) - STATE_JOBS_SHOWN} more"
        phase = self.shutdown.phase
        if phase == "running" and not self.started.is_set():
            phase = "starting"
        return (
            f"worker {self.worker_id} {phase}, up {time.time() - self.stats.started_at:.1f} s: "
            f"{len(running)} of {self.config.concurrency} slots running [{shown}], "
            f"{self.window.buffered} fetched and waiting, {self.window.acking} acking; Redis "
            f"{self.conn.endpoint} {self.conn.state.value}; {self.stats.counter_line()}"
        )

    def _safety_stats(self) -> dict[str, Any]:
        """Ownership counters, stuck threads and the eviction policy, for beats and /metrics."""
        ownership = self.fetcher.ownership
        return {
            **ownership.counters(),
            "presumed_dead_at": ownership.presumed_dead_at,
            "failovers": self.conn.failovers,
            "primary": self.conn.primary,
            "stuck_threads": self._threads.stuck,
            "eviction_policy": self.heartbeat.eviction.get("policy"),
        }

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
        if self.watchdog.stalled is not None:
            return False, self.watchdog.stalled
        threads_ok, threads_why = self._threads.health()
        if not threads_ok:
            return False, threads_why
        ttl, now = self.config.heartbeat_ttl, time.time()
        ownership = self.fetcher.ownership
        presumed = ownership.presumed_dead_at
        if presumed is not None and now - presumed < ttl:
            return False, (
                f"presumed dead {now - presumed:.1f} s ago: its lease expired and its jobs were "
                f"recovered elsewhere ({ownership.presumed_dead} time(s) so far, "
                f"{ownership.late_settles} late settle(s) fenced off); rejoined with a fresh lease"
            )
        beats = self.heartbeat.unhealthy()
        if beats is not None:
            return False, beats
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
        reserve = cleanup_reserve(self.config.grace_period)
        fetching.cancel()
        self.window.close()
        if self.window.running:
            log.info(
                "waiting up to %.1f s for %d running jobs (%d unstarted go back to their queue)",
                max(0.0, deadline - loop.time() - reserve),
                self.window.running,
                self.window.buffered,
            )
        await drain(running, self.shutdown.forced, until=deadline - reserve)
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
        left = interrupted + self.window.drain()  # in fetch order: started ones first
        requeued = await give_back(self.fetcher, self.acks, left, deadline, self.shutdown)
        self.stats.requeued = requeued
        log.info(
            "worker %s stopped after running %.1f s (shutdown took %.1f s): %s",
            self.worker_id,
            time.time() - self.stats.started_at,
            loop.time() - began,
            self.stats.counter_line(),
        )


def log_not_started(job: Job) -> None:
    """The line for a job in hand that another worker recovered (see ``Worker._runner``)."""
    log.warning(
        "job %s not started: it left this worker's processing list while the worker was "
        "presumed dead (recovered by another worker after a freeze or cut-off past the "
        "heartbeat TTL; or Redis lost its data, and with it the job)",
        job.id,
        extra={"task": job.task, "job_id": job.id, "outcome": "not started"},
    )
