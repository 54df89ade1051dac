"""Queue protocol.

Fetcher: take jobs from queues in priority order, settle them, recover dead workers' jobs.

Reliable mode (default, at-least-once): one Lua script moves up to ``max_jobs`` payloads from
the queues into this worker's per-queue processing lists (``steadfetch:processing:{worker}:
{queue_key}``); ack removes a payload by value. Fast mode (at-most-once, Resque semantics):
destructive pops.

Idle without polling: when every queue is empty the fetcher blocks server-side for at most
``block_timeout``: on BLMOVE for a single queue, else on BLPOP over the queues' wake lists, which
producers and the scheduler feed with disposable tokens. Producers that push no tokens (Resque,
Apisonator) are still drained within one block timeout.

A reply lost after the script ran (the ambiguous failure) leaves the payloads in the processing
list: :mod:`fetcher.adoption` keeps what this worker holds, notices that a reply may have been
lost, bounds replies in bytes, and reads such orphans back; the fetcher adopts them before it
takes anything more. A payload over ``max_payload_bytes`` never leaves Redis: the scripts
dead-letter it server-side.
One fetch at a time per Fetcher; ack/nack may run concurrently with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal

from redis.asyncio import Redis

from steadfetch.fetcher import cluster, codec, deadletter
from steadfetch.fetcher.adoption import Adoption, Lost, as_bytes
from steadfetch.fetcher.codec import decode
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.errors import DecodeError, WrongTypeError
from steadfetch.fetcher.job import Job
from steadfetch.fetcher.keys import Keys, QueueRef, keys_for
from steadfetch.fetcher.registry import Ownership, WorkerRegistration
from steadfetch.fetcher.scheduling import job_backoff, promote_due
from steadfetch.fetcher.scripts import ACK, FETCH, REQUEUE, WAKE_BOUND
from steadfetch.fetcher.settle import Settler
from steadfetch.fetcher.unique import release as release_ids

#: The fetch mode, the one definition (``worker.config`` and the CLI read it from here).
Mode = Literal["reliable", "fast"]
Outcome = Literal["retried", "dead"]
log = logging.getLogger("fetcher.fetch")


def _check_arguments(
    worker_id: str, queues: Sequence[str], mode: str, block_timeout: float
) -> None:
    """ValueError for what no Fetcher can work with, before anything is built."""
    if not worker_id:
        raise ValueError("worker_id must be a non-empty string")
    if not queues or len(set(queues)) != len(queues) or not all(queues):
        raise ValueError(f"queues must be distinct non-empty names, got {list(queues)!r}")
    if mode not in ("reliable", "fast"):
        raise ValueError(f"mode must be 'reliable' or 'fast', got {mode!r}")
    if block_timeout <= 0:
        raise ValueError(f"block_timeout must be > 0 (0 would block forever), got {block_timeout}")


def _ack_arguments(
    jobs: Iterable[Job], queue_of: Callable[[str], QueueRef]
) -> tuple[list[str], list[bytes]]:
    """The ACK script's keys and arguments: each processing list once, in first-seen order, and
    per list the count of its payloads followed by them (fetch order kept, so the script can
    LTRIM a head instead of one LREM per job)."""
    by_key: dict[str, list[bytes]] = {}
    for job in jobs:
        raws = by_key.get(key := queue_of(job.queue).processing)
        if raws is None:
            by_key[key] = [job.raw]
        else:
            raws.append(job.raw)
    args: list[bytes] = []
    for raws in by_key.values():
        args.append(b"%d" % len(raws))
        args += raws
    return list(by_key), args


class Fetcher:
    """Fetches for one worker from ``queues`` (names, highest priority first).

    ``max_payload_bytes`` bounds a payload (bigger ones are dead-lettered); ``heartbeat_ttl`` is
    the TTL :meth:`register` gives the first heartbeat; ``retry_base``/``retry_cap`` shape the
    backoff of :meth:`nack` (``base * 2**(attempt-1)`` seconds, capped).
    """

    def __init__(
        self,
        conn: RedisConnection,
        worker_id: str,
        queues: Sequence[str],
        *,
        mode: Mode = "reliable",
        block_timeout: float = 1.0,
        keys: Keys | None = None,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        heartbeat_ttl: float = 30.0,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
    ) -> None:
        _check_arguments(worker_id, queues, mode, block_timeout)
        self.conn = conn
        self.worker_id = worker_id
        self.queues = list(queues)
        self.mode: Mode = mode
        self.block_timeout = block_timeout
        self.keys = keys_for(conn, keys)
        self.keys.check_worker_id(worker_id)
        self.max_payload_bytes = max_payload_bytes
        self.heartbeat_ttl = heartbeat_ttl
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        # One record per queue (name, key, processing list, wake list), in priority order.
        self._queues = [self.keys.queue_ref(worker_id, name) for name in self.queues]
        self._groups = cluster.slot_groups(self.keys, self._queues)  # one fetch call each
        self._by_name = {q.name: q for q in self._queues}
        self._by_key = {q.key: q for q in self._queues}
        self._registration = WorkerRegistration(
            conn, self.keys, worker_id, [q.key for q in self._queues]
        )
        self._fetching = f"fetching from queues [{', '.join(self.queues)}]"
        reliable = mode == "reliable"
        self._adoption = Adoption(
            conn,
            self.keys,
            worker_id,
            self._queues,
            reliable=reliable,
            max_payload_bytes=max_payload_bytes,
            operation=self._fetching,
        )
        self._settler = Settler(conn, self.keys, worker_id, self._registration, reliable=reliable)
        # To tell recovered jobs after a lease loss.
        self._registration.in_flight = self._adoption.in_flight
        self._failovers_seen = conn.failovers
        self._fetching_now = False  # adoption relies on a single fetch at a time
        self._accepted: list[Job] = []  # taken by the running fetch, not yet handed out

    def __repr__(self) -> str:
        return f"<Fetcher {self.worker_id} {self.mode} {self.queues} in_flight={self.in_flight}>"

    @property
    def ownership(self) -> Ownership:
        """Recovered jobs, presumed-dead events and late settles seen by this fetcher."""
        return self._registration.ownership

    @property
    def in_flight(self) -> int:
        """Jobs handed out by fetch and not yet acked, nacked, dead-lettered or requeued."""
        return sum(self._adoption.in_flight.values())

    @property
    def dead_lettered(self) -> int:
        """Payloads this fetcher dead-lettered itself (undecodable: never handed out)."""
        return self._settler.dead_lettered

    @property
    def fetch_bytes(self) -> int:
        """The byte budget of the next fetch or adoption reply (see :mod:`fetcher.adoption`)."""
        return self._adoption.fetch_bytes

    @fetch_bytes.setter
    def fetch_bytes(self, value: int) -> None:
        self._adoption.fetch_bytes = value

    # -- fetching ------------------------------------------------------------------------------

    async def fetch(self, max_jobs: int) -> list[Job]:
        """Up to ``max_jobs`` jobs, highest-priority queue first; never more.

        When every queue is empty, blocks up to ``block_timeout`` and returns ``[]`` if nothing
        came. Undecodable payloads are dead-lettered here (with raw bytes and reason) and not
        returned. Redis outages are retried forever (cancel the call to stop).
        """
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
        if self._fetching_now:
            raise RuntimeError(f"{self!r}: fetch() is already running; one fetch at a time")
        self._fetching_now = True
        try:
            while True:
                if self.conn.failovers != self._failovers_seen and self.mode == "reliable":
                    # A failover may have dropped acks the old primary took: jobs this worker
                    # finished are back in its processing lists on the new one. Adopt them.
                    self._failovers_seen = self.conn.failovers
                    self._adoption.orphans_possible = True
                if self._adoption.orphans_possible:
                    adopted = await self._accept(await self._adoption.orphans(max_jobs))
                    if adopted:
                        return adopted
                    if self._adoption.orphans_possible:
                        # An ack shifted the list between two slices and may have hidden an
                        # orphan from this read (or only undecodable ones were found): read
                        # again before taking or blocking, or it would wait a whole fetch.
                        continue
                jobs = await self._take(max_jobs)
                if jobs is None:
                    continue  # the reply may be lost: adopt what it moved before taking more
                if jobs:
                    return jobs
                jobs = await self._block_then_take(max_jobs)
                if jobs is not None:
                    return jobs
        except BaseException:
            # Cancelled or failed after jobs were taken but before they were handed out: they
            # stay in the processing list, so forget them here and adopt them next time.
            self._release_all(self._accepted)
            self._adoption.orphans_possible = self.mode == "reliable"
            raise
        finally:
            self._accepted = []
            self._fetching_now = False

    async def _take(self, max_jobs: int) -> list[Job] | None:
        """Non-blocking batched take, bounded in jobs and bytes: one call per slot group, in
        priority order (one group but on a Redis Cluster: :func:`fetcher.cluster.slot_groups`).
        ``None`` when the reply may have been lost and nothing was taken before it."""
        taken: list[Job] = []
        budget = self.fetch_bytes
        for queues in self._groups:
            jobs = await self._take_from(queues, max_jobs - len(taken), budget)
            if jobs is None:
                return taken or None  # taken already: hand it out; adoption comes next
            taken += jobs
            budget -= sum(len(job.raw) for job in jobs)
            if len(taken) >= max_jobs or budget <= 0:
                break
        return taken

    async def _take_from(
        self, queues: list[QueueRef], max_jobs: int, budget: int
    ) -> list[Job] | None:
        """:meth:`_take` over ``queues`` (one slot); loops while a batch held only undecodable
        payloads."""
        keys = [q.key for q in queues]
        if self.mode == "reliable":
            keys += [q.processing for q in queues]
        keys.append(self.keys.dead_of(queues[0].key))
        adoption = self._adoption

        def take(r: Redis) -> Awaitable[Any]:
            args = [max_jobs, budget, self.max_payload_bytes, time.time()]
            return FETCH(r, keys, [*args, self.worker_id, self.mode])

        while True:
            reply = await adoption.moving(take)
            if isinstance(reply, Lost):
                return None
            fetched = [(queues[int(index) - 1], raw) for index, items in reply for raw in items]
            if not fetched:
                return []
            jobs = await self._accept(fetched)
            if jobs:
                return jobs

    async def _block_then_take(self, max_jobs: int) -> list[Job] | None:
        """Block server-side until work may be there (or the block timeout), then take.
        ``None`` when a reply may have been lost."""
        timeout = self.block_timeout
        if self.mode == "fast" or len(self._groups) > 1:
            popped = await self._blpop()
            if popped is None:
                return []
            if self.mode != "fast":  # a wake token (cluster, several slots): take by priority
                return await self._take(max_jobs)
            first = [(self._by_key[as_bytes(popped[0]).decode()], as_bytes(popped[1]))]
        elif len(self._queues) == 1:
            queue = self._queues[0]
            moved = await self._adoption.moving(
                lambda r: r.blmove(queue.key, queue.processing, timeout, "LEFT", "RIGHT"),  # type: ignore[arg-type]
                block_timeout=timeout,
            )
            if moved is None:
                return []
            if isinstance(moved, Lost):
                return None
            first = [(queue, as_bytes(moved))]
        else:
            wake_keys = [q.wake for q in self._queues]
            await self.conn.execute(
                self._fetching, lambda r: r.blpop(wake_keys, timeout), block_timeout=timeout
            )
            return await self._take(max_jobs)
        # Hand the woken job over at once: taking a batch first would add a round trip to an idle
        # worker's latency, and a busy worker's next fetch takes the batch anyway.
        jobs = await self._accept(first)
        return jobs or await self._take(max_jobs)

    async def _blpop(self) -> Any:
        """BLPOP for at most the block timeout on the queues (fast mode) or their wake lists
        (several slots of a Redis Cluster: :func:`fetcher.cluster.block_by_slot`); ``None`` when
        nothing came."""
        timeout = self.block_timeout
        if len(self._groups) > 1:
            fast = self.mode == "fast"
            return await cluster.block_by_slot(
                self.conn, self._groups, fast=fast, block_timeout=timeout, operation=self._fetching
            )
        queue_keys = [q.key for q in self._queues]
        return await self.conn.execute(
            self._fetching, lambda r: r.blpop(queue_keys, timeout), block_timeout=timeout
        )

    async def _accept(self, fetched: Iterable[tuple[QueueRef, bytes]]) -> list[Job]:
        """Decode fetched payloads; dead-letter the undecodable, track the rest as in flight."""
        jobs: list[Job] = []
        accepted, keys, max_bytes = self._accepted, self.keys, self.max_payload_bytes
        in_flight = self._adoption.in_flight if self.mode == "reliable" else None
        for queue, raw in fetched:
            try:
                job = decode(raw, queue.key, keys, max_bytes=max_bytes, queue_name=queue.name)
            except DecodeError as exc:
                reason = f"undecodable payload: {exc.reason}"
                await self._settler.dead_letter_raw(queue, raw, reason)
                continue
            except Exception as exc:  # noqa: BLE001  (a decoder bug is this payload's failure)
                reason = f"undecodable payload: {type(exc).__name__}: {exc}"
                await self._settler.dead_letter_raw(queue, raw, reason)
                continue
            if in_flight is not None:
                held = (queue.key, raw)
                in_flight[held] = in_flight.get(held, 0) + 1
            accepted.append(job)
            jobs.append(job)
        return jobs

    # -- settling ------------------------------------------------------------------------------

    def _queue(self, name: str) -> QueueRef:
        """The record of queue ``name`` (built on the spot for a queue this fetcher does not
        serve: a job handed in from elsewhere)."""
        queue = self._by_name.get(name)
        return queue if queue is not None else self.keys.queue_ref(self.worker_id, name)

    def in_doubt(self) -> bool:
        """Whether a job in hand must pass :meth:`still_held` before it starts (after a presumed
        death, or a lease old enough to have expired): a cheap check, False on a live worker."""
        registration = self._registration
        return self.mode == "reliable" and bool(registration.stale or registration.lease_in_doubt())

    async def still_held(self, job: Job) -> bool:
        """The lease confirmed first; False (``job`` forgotten) when another worker recovered it
        while this one was presumed dead: starting it here would run it twice."""
        await self._registration.confirm()
        return self._registration.still_ours(self._held(job))

    def _held(self, job: Job) -> tuple[str, bytes]:
        return self._queue(job.queue).key, job.raw

    def _release(self, job: Job) -> None:
        self._release_all((job,))

    def _release_all(self, jobs: Iterable[Job]) -> None:
        """Forget settled (or never handed out) jobs: they are no longer in flight."""
        self._adoption.release(self._held(job) for job in jobs)

    async def ack(self, job: Job) -> None:
        """Done: remove the payload from the processing list (a no-op in fast mode)."""
        await self.ack_many([job])

    async def ack_many(self, jobs: Sequence[Job]) -> None:
        """Ack several jobs in one round trip (one script: an LTRIM when the jobs are the head
        of their processing list in fetch order, else an LREM per job)."""
        if self.mode == "fast" or not jobs:
            await release_ids(self.conn, self.keys, jobs)  # no round trip unless one is reserved
            return
        registration = self._registration
        if registration.stale:  # finished after they were recovered elsewhere: touch nothing
            jobs = [job for job in jobs if registration.still_ours(self._held(job))]
            if not jobs:
                return
        queue_of = self._queue
        if len(groups := cluster.by_slot(self.keys, jobs, lambda j: queue_of(j.queue).key)) > 1:
            for group in groups:  # a Redis Cluster: one ACK call per slot
                await self.ack_many(group)
            return
        lists, args = _ack_arguments(jobs, queue_of)
        token = registration.fence
        lease = self.keys.queue_lease(self.worker_id, queue_of(jobs[0].queue).key)
        with self._adoption.settling():
            removed = await self.conn.execute(
                f"acknowledging {len(jobs)} job(s)",
                ACK.bind([lease, *lists], [token, *args]),
                write=True,
            )
        if removed < 0:  # fenced: this worker was presumed dead; rejoin, then ack what is ours
            await registration.lease_lost(token)
            await self.ack_many(jobs)
            return
        self._release_all(jobs)
        await release_ids(self.conn, self.keys, jobs)

    async def nack(
        self,
        job: Job,
        error: BaseException | str,
        traceback_text: str | None = None,
        *,
        delay: float | None = None,
        max_attempts: int | None = None,
    ) -> Outcome:
        """Failed: retry later with backoff (``attempt + 1``), or dead-letter after the last
        attempt with the error and a traceback summary. ``max_attempts`` (the worker's
        decision for a job that carries none) and ``delay`` override the job's and the
        fetcher's defaults."""
        error_text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        queue_key = self._queue(job.queue).key
        if job.attempt >= (max_attempts or job.max_attempts or codec.DEFAULT_MAX_ATTEMPTS):
            entry = deadletter.entry(
                queue_key=queue_key,
                raw=job.raw,
                reason=f"failed after {job.attempt} attempt(s)",
                error=error_text,
                traceback_text=traceback_text,
                attempts=job.attempt,
                worker_id=self.worker_id,
            )
            dead = self.keys.dead_of(queue_key)
            await self._settle(job, "dead-lettering", dead, "rpush", 0, entry)
            return "dead"
        wait = job_backoff(job.attempt, self.retry_base, self.retry_cap) if delay is None else delay
        retry = codec.reencode_for_retry(job, self.keys)
        scheduled = self.keys.scheduled_of(queue_key)
        await self._settle(
            job, "scheduling a retry of", scheduled, "zadd", time.time() + wait, retry
        )
        return "retried"

    async def dead_letter(
        self,
        job: Job,
        reason: str,
        *,
        error: str | None = None,
        traceback_text: str | None = None,
    ) -> None:
        """Move a fetched job to the dead-letter list with ``reason`` (no retry)."""
        queue_key = self._queue(job.queue).key
        entry = deadletter.entry(
            queue_key=queue_key,
            raw=job.raw,
            reason=reason,
            error=error,
            traceback_text=traceback_text,
            attempts=job.attempt,
            worker_id=self.worker_id,
        )
        await self._settle(job, "dead-lettering", self.keys.dead_of(queue_key), "rpush", 0, entry)

    async def _settle(
        self, job: Job, verb: str, destination: str, kind: str, score: float, value: bytes
    ) -> None:
        processing = self._queue(job.queue).processing
        with self._adoption.settling():
            moved = await self._settler.move_out(
                f"{verb} job {job.id}",
                processing,
                job.raw,
                destination,
                kind,
                score,
                value,
                queue_key=self._queue(job.queue).key,
            )
        self._release(job)
        if moved and destination == self.keys.dead_of(self._queue(job.queue).key):
            await release_ids(self.conn, self.keys, [job])
        if not moved:
            log.warning(
                "job %s was no longer in %s when %s it (recovered by another worker after this "
                "worker's heartbeat expired?)",
                job.id,
                processing,
                verb.removesuffix(" of"),
            )

    async def requeue(self, jobs: Sequence[Job]) -> int:
        """Put jobs back at the HEAD of their queues, in their order (shutdown: unstarted jobs)."""
        by_queue: dict[QueueRef, list[Job]] = {}
        for job in jobs:
            by_queue.setdefault(self._queue(job.queue), []).append(job)
        check = "1" if self.mode == "reliable" else "0"
        moved = 0
        for queue, group in by_queue.items():
            keys = [queue.processing, queue.key, queue.wake]
            args: list[Any] = [check, WAKE_BOUND, *(job.raw for job in group)]
            try:
                moved += int(
                    await self.conn.execute(
                        f"requeueing {len(group)} job(s) to {queue.key}",
                        REQUEUE.bind(keys, args),
                    )
                )
            except WrongTypeError as exc:  # the queue's own key: those jobs' failure, not ours
                for job in group:
                    await self.dead_letter(job, f"could not be requeued: {exc}")
                continue
            self._release_all(group)
        return moved

    async def requeue_all_processing(self) -> int:
        """Shutdown: everything left in this worker's processing lists goes back to the head of
        its queue, order preserved. Returns the number of jobs moved."""
        moved = await self._settler.give_back_all(self._queues)
        self._adoption.forget_all()
        return moved

    # -- registry, heartbeat, recovery ---------------------------------------------------------

    async def register(self) -> None:
        """Join the registry (with a first heartbeat, TTL ``heartbeat_ttl``) so that this
        worker's processing lists are recovered if it dies."""
        await self._registration.register(self.heartbeat_ttl, self.queues)

    async def heartbeat(self, payload: dict[str, Any], ttl: float) -> None:
        """Write the heartbeat (JSON, expires after ``ttl`` s). Also re-registers, in case a
        recoverer removed this worker while it was cut off."""
        await self._registration.heartbeat(payload, ttl)

    async def unregister(self) -> int:
        """Leave: return whatever is still in the processing lists (reliable mode, and only
        while this process holds the worker id's lease: a twin's jobs share the lists), then
        drop the registration. Returns the number of jobs given back."""
        moved = 0
        if self.mode == "reliable" and await self._registration.holds_lease():
            moved = await self.requeue_all_processing()
        await self._registration.unregister()
        return moved

    async def recover_dead_workers(self, *, sweep: bool = False) -> int:
        """Move the jobs of every registered worker whose heartbeat is gone back to the head of
        their queues (one atomic script: concurrent recoverers never duplicate a job); with
        ``sweep``, also processing lists that no registered live worker owns (one SCAN)."""
        return await self._registration.recover_dead_workers(sweep=sweep)

    async def promote_due(self, limit: int = 1000) -> int:
        """Move due scheduled jobs (retries, delayed jobs) to their queues; returns the count."""
        return await promote_due(self.conn, self.keys, limit, [q.key for q in self._queues])
