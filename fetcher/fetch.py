"""Fetcher: take jobs from queues in priority order, settle them, recover dead workers' jobs.

Reliable mode (default, at-least-once): one Lua script moves up to ``max_jobs`` payloads from
the queues into this worker's per-queue processing lists (``steadfetch:processing:{worker}:
{queue_key}``); ack removes a payload by value. Fast mode (at-most-once, Resque semantics):
destructive pops.

Idle without polling: when every queue is empty the fetcher blocks server-side for at most
``block_timeout``: on BLMOVE for a single queue, else on BLPOP over the queues' wake lists, which
producers and the scheduler feed with disposable tokens. Producers that push no tokens (Resque,
Apisonator) are still drained within one block timeout.

A reply lost after the script ran (the ambiguous failure) leaves the payloads in the processing
list; the fetcher notices that it may have happened and adopts such orphans on its next fetch.
One fetch at a time per Fetcher; ack/nack may run concurrently with it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis

from fetcher import codec, deadletter
from fetcher.codec import decode
from fetcher.connection import RedisConnection
from fetcher.errors import DecodeError
from fetcher.job import Job
from fetcher.keys import Keys
from fetcher.registry import Ownership, WorkerRegistration
from fetcher.scheduling import promote_due
from fetcher.scripts import (
    ACK,
    FETCH_FAST,
    FETCH_RELIABLE,
    REQUEUE,
    REQUEUE_PROCESSING,
    SETTLE,
    WAKE_BOUND,
)

Mode = Literal["reliable", "fast"]
Outcome = Literal["retried", "dead"]
T = TypeVar("T")
log = logging.getLogger("fetcher.fetch")


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


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
        if not worker_id:
            raise ValueError("worker_id must be a non-empty string")
        if not queues or len(set(queues)) != len(queues) or not all(queues):
            raise ValueError(f"queues must be distinct non-empty names, got {list(queues)!r}")
        if mode not in ("reliable", "fast"):
            raise ValueError(f"mode must be 'reliable' or 'fast', got {mode!r}")
        if block_timeout <= 0:
            raise ValueError(
                f"block_timeout must be > 0 (0 would block forever), got {block_timeout}"
            )
        self.conn = conn
        self.worker_id = worker_id
        self.queues = list(queues)
        self.mode: Mode = mode
        self.block_timeout = block_timeout
        self.keys = keys or Keys()
        self.max_payload_bytes = max_payload_bytes
        self.heartbeat_ttl = heartbeat_ttl
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._queue_keys = self.keys.queue_keys(self.queues)
        self._processing = [self.keys.processing(worker_id, q) for q in self._queue_keys]
        self._processing_of = dict(zip(self._queue_keys, self._processing, strict=True))
        self._queue_key_of = dict(zip(self.queues, self._queue_keys, strict=True))  # name -> key
        self._name_of = dict(zip(self._queue_keys, self.queues, strict=True))
        self._processing_by_name = dict(zip(self.queues, self._processing, strict=True))
        self._wake_keys = [self.keys.wake(q) for q in self._queue_keys]
        self._registration = WorkerRegistration(conn, self.keys, worker_id, self._queue_keys)
        self._fetching = f"fetching from queues [{', '.join(self.queues)}]"
        # Payloads handed out and not yet settled, by (queue key, raw): what is NOT an orphan.
        self._in_flight: Counter[tuple[str, bytes]] = Counter()
        self._registration.in_flight = self._in_flight  # to tell recovered jobs after a lease loss
        # True when payloads may sit in our processing lists that nobody holds: at start (a
        # previous run with this worker id) and after a fetch whose reply may have been lost.
        self._orphans_possible = mode == "reliable"
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
        return sum(self._in_flight.values())

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
            if self._orphans_possible:
                adopted = await self._adopt_orphans(max_jobs)
                if adopted:
                    return adopted
            jobs = await self._take(max_jobs)
            if jobs:
                return jobs
            return await self._block_then_take(max_jobs)
        except BaseException:
            # Cancelled or failed after jobs were taken but before they were handed out: they
            # stay in the processing list, so forget them here and adopt them next time.
            self._release_all(self._accepted)
            self._orphans_possible = self.mode == "reliable"
            raise
        finally:
            self._accepted = []
            self._fetching_now = False

    async def _take(self, max_jobs: int) -> list[Job]:
        """Non-blocking batched take; loops while a batch held only undecodable payloads."""
        if self.mode == "reliable":
            keys, script = [*self._queue_keys, *self._processing], FETCH_RELIABLE
        else:
            keys, script = self._queue_keys, FETCH_FAST
        while True:
            reply = await self._moving(script.bind(keys, [max_jobs]))
            fetched = [
                (self._queue_keys[int(index) - 1], raw) for index, items in reply for raw in items
            ]
            if not fetched:
                return []
            jobs = await self._accept(fetched)
            if jobs:
                return jobs

    async def _block_then_take(self, max_jobs: int) -> list[Job]:
        """Block server-side until work may be there (or the block timeout), then take."""
        timeout = self.block_timeout
        if self.mode == "fast":
            popped = await self.conn.execute(
                self._fetching, lambda r: r.blpop(self._queue_keys, timeout), block_timeout=timeout
            )
            if popped is None:
                return []
            first = [(_as_bytes(popped[0]).decode(), _as_bytes(popped[1]))]
        elif len(self._queue_keys) == 1:
            queue_key, processing = self._queue_keys[0], self._processing[0]
            moved = await self._moving(
                lambda r: r.blmove(queue_key, processing, timeout, "LEFT", "RIGHT"),  # type: ignore[arg-type]
                block_timeout=timeout,
            )
            if moved is None:
                return []
            first = [(queue_key, _as_bytes(moved))]
        else:
            await self.conn.execute(
                self._fetching, lambda r: r.blpop(self._wake_keys, timeout), block_timeout=timeout
            )
            return await self._take(max_jobs)
        # Hand the woken job over at once: taking a batch first would add a round trip to an idle
        # worker's latency, and a busy worker's next fetch takes the batch anyway.
        jobs = await self._accept(first)
        return jobs or await self._take(max_jobs)

    async def _moving(
        self, fn: Callable[[Redis], Awaitable[T]], *, block_timeout: float | None = None
    ) -> T:
        """Run a call that moves payloads into our processing lists, noting when its reply may
        have been lost (a failed attempt, or cancellation) so that orphans get adopted."""
        attempts = 0

        async def attempt(client: Redis) -> T:
            nonlocal attempts
            attempts += 1
            return await fn(client)

        try:
            result = await self.conn.execute(self._fetching, attempt, block_timeout=block_timeout)
        except BaseException:
            self._orphans_possible = self.mode == "reliable"
            raise
        if attempts > 1 and self.mode == "reliable":
            self._orphans_possible = True
        return result

    async def _adopt_orphans(self, max_jobs: int) -> list[Job]:
        """Hand out payloads in our processing lists that no caller holds."""
        held = Counter(self._in_flight)  # snapshot first: an ack racing the read is still held

        async def read(r: Redis) -> list[list[bytes]]:
            pipe = r.pipeline(transaction=False)
            for key in self._processing:
                pipe.lrange(key, 0, -1)
            return list(await pipe.execute())

        lists = await self.conn.execute(self._fetching, read)
        orphans: list[tuple[str, bytes]] = []
        for queue_key, items in zip(self._queue_keys, lists, strict=True):
            for raw in items:
                if held[(queue_key, raw)] > 0:
                    held[(queue_key, raw)] -= 1
                else:
                    orphans.append((queue_key, raw))
        self._orphans_possible = len(orphans) > max_jobs
        if orphans:
            log.warning(
                "worker %s adopts %d job(s) left in its processing lists (a lost reply or an "
                "earlier run with this worker id)",
                self.worker_id,
                min(len(orphans), max_jobs),
            )
        return await self._accept(orphans[:max_jobs])

    async def _accept(self, fetched: Iterable[tuple[str, bytes]]) -> list[Job]:
        """Decode fetched payloads; dead-letter the undecodable, track the rest as in flight."""
        jobs: list[Job] = []
        accepted, keys, max_bytes, name_of = (
            self._accepted,
            self.keys,
            self.max_payload_bytes,
            self._name_of,
        )
        in_flight = self._in_flight if self.mode == "reliable" else None
        for queue_key, raw in fetched:
            try:
                job = decode(
                    raw, queue_key, keys, max_bytes=max_bytes, queue_name=name_of.get(queue_key)
                )
            except DecodeError as exc:
                await self._dead_letter_raw(queue_key, raw, f"undecodable payload: {exc.reason}")
                continue
            if in_flight is not None:
                held = (queue_key, raw)
                in_flight[held] = in_flight.get(held, 0) + 1
            accepted.append(job)
            jobs.append(job)
        return jobs

    # -- settling ------------------------------------------------------------------------------

    def _queue_key(self, name: str) -> str:
        key = self._queue_key_of.get(name)
        if key is None:
            key = self._queue_key_of[name] = self.keys.queue_key(name)
        return key

    def _release(self, job: Job) -> None:
        self._release_all((job,))

    def _release_all(self, jobs: Iterable[Job]) -> None:
        """Forget settled (or never handed out) jobs: they are no longer in flight."""
        in_flight, queue_key = self._in_flight, self._queue_key
        for job in jobs:
            held = (queue_key(job.queue), job.raw)
            count = in_flight.get(held, 0)
            if count > 1:
                in_flight[held] = count - 1
            else:
                in_flight.pop(held, None)

    async def ack(self, job: Job) -> None:
        """Done: remove the payload from the processing list (a no-op in fast mode)."""
        await self.ack_many([job])

    async def ack_many(self, jobs: Sequence[Job]) -> None:
        """Ack several jobs in one round trip (one script: an LTRIM when the jobs are the head
        of their processing list in fetch order, else an LREM per job)."""
        if self.mode == "fast" or not jobs:
            return
        registration = self._registration
        if registration.stale:  # finished after they were recovered elsewhere: touch nothing
            late: list[Job] = []
            fresh: list[Job] = []
            for job in jobs:
                held = (self._queue_key(job.queue), job.raw)
                (late if registration.take_stale(held) else fresh).append(job)
            self._release_all(late)
            jobs = fresh
            if not jobs:
                return
        by_key: dict[str, list[bytes]] = {}
        processing_key = self._processing_key
        for job in jobs:
            raws = by_key.get(key := processing_key(job))
            if raws is None:
                by_key[key] = [job.raw]
            else:
                raws.append(job.raw)
        args: list[bytes] = []
        for raws in by_key.values():
            args.append(b"%d" % len(raws))
            args += raws
        token = registration.fence
        removed = await self.conn.execute(
            f"acknowledging {len(jobs)} job(s)",
            ACK.bind([registration.lease_key, *by_key], [token, *args]),
        )
        if removed < 0:  # fenced: this worker was presumed dead; rejoin, then ack what is ours
            await registration.lease_lost(token)
            await self.ack_many(jobs)
            return
        self._release_all(jobs)

    async def nack(
        self,
        job: Job,
        error: BaseException | str,
        traceback_text: str | None = None,
        *,
        delay: float | None = None,
    ) -> Outcome:
        """Failed: retry later with backoff (``attempt + 1``), or dead-letter after the last
        attempt with the error and a traceback summary."""
        error_text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        queue_key = self.keys.queue_key(job.queue)
        if job.attempt >= job.max_attempts:
            entry = deadletter.entry(
                queue_key=queue_key,
                raw=job.raw,
                reason=f"failed after {job.attempt} attempt(s)",
                error=error_text,
                traceback_text=traceback_text,
                attempts=job.attempt,
                worker_id=self.worker_id,
            )
            await self._settle(job, "dead-lettering", self.keys.dead, "rpush", 0, entry)
            return "dead"
        wait = (
            delay
            if delay is not None
            else min(self.retry_cap, self.retry_base * 2.0 ** (job.attempt - 1))
        )
        retry = codec.reencode_for_retry(job, self.keys)
        await self._settle(
            job, "scheduling a retry of", self.keys.scheduled, "zadd", time.time() + wait, retry
        )
        return "retried"

    async def dead_letter(self, job: Job, reason: str) -> None:
        """Move a fetched job to the dead-letter list with ``reason`` (no retry)."""
        entry = deadletter.entry(
            queue_key=self.keys.queue_key(job.queue),
            raw=job.raw,
            reason=reason,
            attempts=job.attempt,
            worker_id=self.worker_id,
        )
        await self._settle(job, "dead-lettering", self.keys.dead, "rpush", 0, entry)

    async def _settle(
        self, job: Job, verb: str, destination: str, kind: str, score: float, value: bytes
    ) -> None:
        processing = self._processing_key(job)
        moved = await self._move_out(
            f"{verb} job {job.id}",
            processing,
            job.raw,
            destination,
            kind,
            score,
            value,
            queue_key=self._queue_key(job.queue),
        )
        self._release(job)
        if not moved:
            log.warning(
                "job %s was no longer in %s when %s it (recovered by another worker after this "
                "worker's heartbeat expired?)",
                job.id,
                processing,
                verb.removesuffix(" of"),
            )

    async def _dead_letter_raw(self, queue_key: str, raw: bytes, reason: str) -> None:
        entry = deadletter.entry(
            queue_key=queue_key, raw=raw, reason=reason, worker_id=self.worker_id
        )
        log.error("dead-lettering a payload from %s: %s (%d bytes)", queue_key, reason, len(raw))
        await self._move_out(
            f"dead-lettering an undecodable payload from {queue_key}",
            self._processing_of[queue_key],
            raw,
            self.keys.dead,
            "rpush",
            0,
            entry,
            queue_key=queue_key,
        )

    async def _move_out(
        self,
        operation: str,
        processing: str,
        raw: bytes,
        destination: str,
        kind: str,
        score: float,
        value: bytes,
        *,
        queue_key: str,
    ) -> int:
        """Move ``raw`` from ``processing`` to ``destination`` (atomically, only if still there
        in reliable mode); returns 1 if it moved. Fenced by this worker's lease: a payload that
        was recovered elsewhere while this worker was presumed dead is not moved (returns 0)."""
        registration = self._registration
        keys = [processing, destination, destination, registration.lease_key]
        reliable = self.mode == "reliable"
        while True:
            if registration.stale and registration.take_stale((queue_key, raw)):
                return 0
            token = registration.fence if reliable else ""
            args: list[Any] = [raw, kind, score, value, "1" if reliable else "0", "", token]
            moved = int(await self.conn.execute(operation, SETTLE.bind(keys, args)))
            if moved >= 0:
                return moved
            await registration.lease_lost(token)

    def _processing_key(self, job: Job) -> str:
        key = self._processing_by_name.get(job.queue)
        if key is None:
            queue_key = self._queue_key(job.queue)
            key = self._processing_of.get(queue_key) or self.keys.processing(
                self.worker_id, queue_key
            )
            self._processing_by_name[job.queue] = key
        return key

    async def requeue(self, jobs: Sequence[Job]) -> int:
        """Put jobs back at the HEAD of their queues, in their order (shutdown: unstarted jobs)."""
        by_queue: dict[str, list[Job]] = {}
        for job in jobs:
            by_queue.setdefault(self.keys.queue_key(job.queue), []).append(job)
        check = "1" if self.mode == "reliable" else "0"
        moved = 0
        for queue_key, group in by_queue.items():
            keys = [self._processing_key(group[0]), queue_key, self.keys.wake(queue_key)]
            args: list[Any] = [check, WAKE_BOUND, *(job.raw for job in group)]
            moved += int(
                await self.conn.execute(
                    f"requeueing {len(group)} job(s) to {queue_key}",
                    REQUEUE.bind(keys, args),
                )
            )
            self._release_all(group)
        return moved

    async def requeue_all_processing(self) -> int:
        """Shutdown: everything left in this worker's processing lists goes back to the head of
        its queue, order preserved. Returns the number of jobs moved."""
        moved = 0
        for queue_key, processing, wake in zip(
            self._queue_keys, self._processing, self._wake_keys, strict=True
        ):
            moved += int(
                await self.conn.execute(
                    f"requeueing the jobs of worker {self.worker_id} to {queue_key}",
                    REQUEUE_PROCESSING.bind([processing, queue_key, wake], [WAKE_BOUND]),
                )
            )
        self._in_flight.clear()
        self._orphans_possible = False
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

    async def unregister(self) -> None:
        """Leave: return whatever is still in the processing lists, then drop the registration."""
        if self.mode == "reliable" and await self._registration.holds_lease():
            await self.requeue_all_processing()
        await self._registration.unregister()

    async def recover_dead_workers(self, *, sweep: bool = False) -> int:
        """Move the jobs of every registered worker whose heartbeat is gone back to the head of
        their queues (one atomic script: concurrent recoverers never duplicate a job); with
        ``sweep``, also processing lists that no registered live worker owns (one SCAN)."""
        return await self._registration.recover_dead_workers(sweep=sweep)

    async def promote_due(self, limit: int = 1000) -> int:
        """Move due scheduled jobs (retries, delayed jobs) to their queues; returns the count."""
        return await promote_due(self.conn, self.keys, limit)
