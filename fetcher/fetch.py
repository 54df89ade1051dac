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
list; the fetcher notices that it may have happened and adopts such orphans before it takes
anything more (a take is never retried blindly: a reply too large for the server's
``client-output-buffer-limit`` is lost every time, and each retry would move another batch).
Batches are bounded in jobs and in bytes; the byte budget halves after each lost reply (down to
:data:`MIN_FETCH_BYTES`) and grows back after a run of good ones. Adoption reads the processing
lists in slices bounded the same way. A payload over ``max_payload_bytes`` never leaves Redis: the
scripts dead-letter it server-side. One that is smaller but whose reply keeps being lost (the
server's limit is below it) is dead-lettered server-side too, after :data:`LOST_LIMIT` lost
replies in a row at the smallest budget, once this worker holds no job it could be confused with.
One fetch at a time per Fetcher; ack/nack may run concurrently with it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis

from fetcher import cluster, codec, deadletter
from fetcher.codec import decode
from fetcher.connection import RedisConnection
from fetcher.errors import DecodeError, WrongTypeError
from fetcher.job import Job
from fetcher.keys import Keys, QueueRef, keys_for
from fetcher.registry import Ownership, WorkerRegistration
from fetcher.scheduling import job_backoff, promote_due
from fetcher.scripts import (
    ACK,
    FETCH,
    REQUEUE,
    REQUEUE_PROCESSING,
    SETTLE,
    WAKE_BOUND,
    LuaScript,
)
from fetcher.unique import release as release_ids

ADOPT_READ = LuaScript.load("adopt_read")
GIVE_BACK = LuaScript.load("give_back")

#: The fetch mode, the one definition (``worker.config`` and the CLI read it from here).
Mode = Literal["reliable", "fast"]
Outcome = Literal["retried", "dead"]
T = TypeVar("T")
log = logging.getLogger("fetcher.fetch")

#: Most payloads one read of a processing list returns (adoption, give-back, dead-lettering):
#: a reply of a whole long list may be larger than the server lets a client receive.
ADOPT_CHUNK = 100
#: Byte budget of one fetch or adoption reply: where it starts, its floor, and how it recovers.
DEFAULT_FETCH_BYTES = 1024 * 1024
MIN_FETCH_BYTES = 16 * 1024
GROW_AFTER = 32  # good replies in a row before the budget doubles again
#: Lost replies in a row, at the floor budget, before a payload that big is taken for one that
#: this connection can never receive.
LOST_LIMIT = 5
#: Lost adoption replies in a row, while this worker holds jobs (so nothing can be dead-lettered
#: as unreceivable yet), before it gives back what it cannot receive: again at every multiple.
GIVE_BACK_AFTER = 3 * LOST_LIMIT


class _CannotReceive(Exception):
    """Adoption replies keep being lost while this worker holds jobs: give back, stop reading."""


class _ReplyMaybeLost(Exception):
    """A call that moves payloads failed once: its reply may have been lost after the script
    ran. Raised instead of a second attempt, so the caller adopts before taking more."""


class _Lost:
    """What :meth:`Fetcher._moving` returns instead of a result when the reply may be lost."""


_LOST = _Lost()


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
        # Payloads handed out and not yet settled, by (queue key, raw): what is NOT an orphan.
        self._in_flight: Counter[tuple[str, bytes]] = Counter()
        # Payloads this fetcher dead-lettered itself (undecodable: never handed to the worker).
        self.dead_lettered = 0
        self._registration.in_flight = self._in_flight  # to tell recovered jobs after a lease loss
        # True when payloads may sit in our processing lists that nobody holds: at start (a
        # previous run with this worker id) and after a fetch whose reply may have been lost.
        self._orphans_possible = mode == "reliable"
        self._failovers_seen = conn.failovers
        self._fetching_now = False  # adoption relies on a single fetch at a time
        self.fetch_bytes = DEFAULT_FETCH_BYTES  # the byte budget now (see the module docstring)
        self._lost_in_a_row = 0
        self._good_in_a_row = 0
        # Acks/settles begun, and those still running: adoption notices concurrent ones (one
        # that began before it may still remove a held payload while it reads).
        self._settles_begun = 0
        self._settles_running = 0
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
            while True:
                if self.conn.failovers != self._failovers_seen and self.mode == "reliable":
                    # A failover may have dropped acks the old primary took: jobs this worker
                    # finished are back in its processing lists on the new one. Adopt them.
                    self._failovers_seen = self.conn.failovers
                    self._orphans_possible = True
                if self._orphans_possible:
                    adopted = await self._adopt_orphans(max_jobs)
                    if adopted:
                        return adopted
                    if self._orphans_possible:
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
            self._orphans_possible = self.mode == "reliable"
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

        def take(r: Redis) -> Awaitable[Any]:
            args = [max_jobs, budget, self.max_payload_bytes, time.time(), self.worker_id]
            return FETCH(r, keys, [*args, self.mode])

        while True:
            reply = await self._moving(take)
            if isinstance(reply, _Lost):
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
        if len(self._groups) > 1:
            return await self._block_by_slot(max_jobs)
        if self.mode == "fast":
            queue_keys = [q.key for q in self._queues]
            popped = await self.conn.execute(
                self._fetching, lambda r: r.blpop(queue_keys, timeout), block_timeout=timeout
            )
            if popped is None:
                return []
            first = [(self._by_key[_as_bytes(popped[0]).decode()], _as_bytes(popped[1]))]
        elif len(self._queues) == 1:
            queue = self._queues[0]
            moved = await self._moving(
                lambda r: r.blmove(queue.key, queue.processing, timeout, "LEFT", "RIGHT"),  # type: ignore[arg-type]
                block_timeout=timeout,
            )
            if moved is None:
                return []
            if isinstance(moved, _Lost):
                return None
            first = [(queue, _as_bytes(moved))]
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

    async def _block_by_slot(self, max_jobs: int) -> list[Job] | None:
        """Redis Cluster, queues in several slots: one BLPOP cannot span slots, so block on one
        slot's wake lists (fast mode: its queues) at a time, for :data:`cluster.BLOCK_SLICE`
        each, until the block timeout; after a wake token, take over every queue in priority
        order (fast mode: the popped job is handed over at once, as in the one-slot path)."""
        deadline = time.monotonic() + self.block_timeout
        while True:
            for queues in self._groups:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                wait = min(cluster.BLOCK_SLICE, left)
                watched = [q.key if self.mode == "fast" else q.wake for q in queues]
                popped = await self.conn.execute(
                    self._fetching, cluster.blpop(watched, wait), block_timeout=wait
                )
                if popped is None:
                    continue
                if self.mode == "fast":
                    queue = self._by_key[_as_bytes(popped[0]).decode()]
                    jobs = await self._accept([(queue, _as_bytes(popped[1]))])
                    return jobs or await self._take(max_jobs)
                return await self._take(max_jobs)

    async def _moving(
        self, fn: Callable[[Redis], Awaitable[T]], *, block_timeout: float | None = None
    ) -> T | _Lost:
        """Run a call that moves payloads into our processing lists, at most once per reply: after
        a failed attempt (its reply may have been lost after the script ran) the call is not
        repeated but returns ``_LOST``, with orphans marked for adoption and the byte budget
        halved, so that the caller adopts before it takes more. (The retry policy's wait before
        that second attempt still paces the loop during an outage.)"""
        attempts = 0

        async def attempt(client: Redis) -> T:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                raise _ReplyMaybeLost
            return await fn(client)

        try:
            result = await self.conn.execute(self._fetching, attempt, block_timeout=block_timeout)
        except _ReplyMaybeLost:
            self._reply_lost()
            return _LOST
        except BaseException:
            self._orphans_possible = self.mode == "reliable"
            raise
        self._reply_received()
        return result

    def _reply_lost(self) -> None:
        """A reply that moved (or read) payloads may have been lost: adopt, and shrink the next
        replies (a reply over the server's output-buffer limit is lost every time)."""
        self._orphans_possible = self.mode == "reliable"
        self._lost_in_a_row += 1
        self._good_in_a_row = 0
        smaller = max(MIN_FETCH_BYTES, self.fetch_bytes // 2)
        if smaller < self.fetch_bytes or self._lost_in_a_row == LOST_LIMIT:
            log.warning(
                "worker %s: %d fetch repl%s in a row may have been lost; adopting what they "
                "moved before taking more, with replies bounded to %d bytes (if this repeats "
                "while Redis is reachable, its replies exceed client-output-buffer-limit)",
                self.worker_id,
                self._lost_in_a_row,
                "y" if self._lost_in_a_row == 1 else "ies",
                smaller,
            )
        self.fetch_bytes = smaller

    def _reply_received(self) -> None:
        self._lost_in_a_row = 0
        self._good_in_a_row += 1
        if self._good_in_a_row >= GROW_AFTER and self.fetch_bytes < DEFAULT_FETCH_BYTES:
            self.fetch_bytes = min(DEFAULT_FETCH_BYTES, self.fetch_bytes * 2)
            self._good_in_a_row = 0

    def _oversize(self) -> tuple[int, str]:
        """Payloads bigger than this are dead-lettered server-side by an adoption read, and why.

        ``max_payload_bytes`` (no held job can be bigger: it was decoded); after LOST_LIMIT lost
        replies in a row at the floor budget, and only while this worker holds no job at all
        (so none of its own can match), the floor itself: a payload that big cannot reach us."""
        if (
            self._lost_in_a_row >= LOST_LIMIT
            and self.fetch_bytes <= MIN_FETCH_BYTES
            and not self._in_flight
        ):
            return self.fetch_bytes, (
                f"could not be received: {self._lost_in_a_row} replies in a row that carried it "
                "were lost (larger than the server's client-output-buffer-limit?)"
            )
        return self.max_payload_bytes, f"exceeds the limit of {self.max_payload_bytes}"

    async def _adopt_orphans(self, max_jobs: int) -> list[Job]:
        """Hand out payloads in our processing lists that no caller holds (at most
        ``max_jobs``), reading the lists in slices bounded in items and bytes."""
        held = Counter(self._in_flight)  # snapshot first: an ack racing the read is still held
        begun_before, running_before = self._settles_begun, self._settles_running
        orphans: list[tuple[QueueRef, bytes]] = []
        more = slices = 0
        for queue in self._queues:
            start, ended = 0, False
            while not ended and len(orphans) < max_jobs:
                start, ended, items = await self._read_slice(queue, start)
                slices += 1
                for raw in items:
                    if held[(queue.key, raw)] > 0:
                        held[(queue.key, raw)] -= 1
                    else:
                        orphans.append((queue, raw))
            more += not ended
        # A slice read after an ack removed an item before it may have skipped one: look again.
        raced = slices > len(self._queues) and (
            running_before > 0 or self._settles_begun != begun_before
        )
        self._orphans_possible = bool(more) or len(orphans) > max_jobs or raced
        if orphans:
            log.warning(
                "worker %s adopts %d job(s) left in its processing lists (a lost reply or an "
                "earlier run with this worker id)",
                self.worker_id,
                min(len(orphans), max_jobs),
            )
        return await self._accept(orphans[:max_jobs])

    async def _read_slice(self, queue: QueueRef, start: int) -> tuple[int, bool, list[bytes]]:
        """One bounded slice of ``queue``'s processing list from ``start``: (next start, whether
        the list ends there, payloads). A lost reply shrinks the budget for the retry."""
        attempts = 0

        def read(r: Redis) -> Awaitable[Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                self._reply_lost()
                if self._in_flight and self._lost_in_a_row % GIVE_BACK_AFTER == 0:
                    raise _CannotReceive
            oversize, why = self._oversize()
            keys = [queue.processing, self.keys.dead_of(queue.key)]
            args = [start, ADOPT_CHUNK, self.fetch_bytes, oversize, queue.key, time.time()]
            return ADOPT_READ(r, keys, [*args, self.worker_id, why])

        try:
            following, ended, items = await self.conn.execute(self._fetching, read)
        except _CannotReceive:
            await self._give_back(queue)
            return start, True, []
        self._reply_received()
        return int(following), bool(ended), [_as_bytes(item) for item in items]

    async def _give_back(self, queue: QueueRef) -> None:
        """Say that this worker cannot receive what it holds in ``queue``'s processing list, and
        give back every payload there that it does not hold (another worker, or this one once
        idle, can take them; one that nobody can receive is then dead-lettered server-side)."""
        held = [
            hashlib.sha1(raw, usedforsecurity=False).hexdigest()
            for (key, raw), count in self._in_flight.items()
            if key == queue.key
            for _ in range(count)
        ]
        given = await self.conn.execute(
            f"giving back the jobs worker {self.worker_id} cannot receive to {queue.key}",
            GIVE_BACK.bind([queue.processing, queue.key, queue.wake], [WAKE_BOUND, *held]),
        )
        log.warning(
            "worker %s cannot receive the jobs in %s (%d replies in a row lost while it holds %d "
            "job(s)); gave %d job(s) back to %s",
            self.worker_id,
            queue.processing,
            self._lost_in_a_row,
            len(self._in_flight),
            int(given),
            queue.key,
        )

    async def _accept(self, fetched: Iterable[tuple[QueueRef, bytes]]) -> list[Job]:
        """Decode fetched payloads; dead-letter the undecodable, track the rest as in flight."""
        jobs: list[Job] = []
        accepted, keys, max_bytes = self._accepted, self.keys, self.max_payload_bytes
        in_flight = self._in_flight if self.mode == "reliable" else None
        for queue, raw in fetched:
            try:
                job = decode(raw, queue.key, keys, max_bytes=max_bytes, queue_name=queue.name)
            except DecodeError as exc:
                await self._dead_letter_raw(queue, raw, f"undecodable payload: {exc.reason}")
                continue
            except Exception as exc:  # noqa: BLE001  (a decoder bug is this payload's failure)
                reason = f"undecodable payload: {type(exc).__name__}: {exc}"
                await self._dead_letter_raw(queue, raw, reason)
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

    @contextmanager
    def _settling(self) -> Iterator[None]:
        """Around a call that removes held payloads from a processing list. Adoption reads the
        lists in slices: such a removal between two slices shifts the list and may hide an orphan
        from the next one. Counted when the call begins, not when its reply comes back: the
        server may apply it while an adoption reads, and answer after that adoption ended."""
        self._settles_begun += 1
        self._settles_running += 1
        try:
            yield
        finally:
            self._settles_running -= 1

    def _release(self, job: Job) -> None:
        self._release_all((job,))

    def _release_all(self, jobs: Iterable[Job]) -> None:
        """Forget settled (or never handed out) jobs: they are no longer in flight."""
        in_flight, queue_of = self._in_flight, self._queue
        for job in jobs:
            held = (queue_of(job.queue).key, job.raw)
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
            await release_ids(self.conn, self.keys, jobs)  # no round trip unless one is reserved
            return
        registration = self._registration
        if registration.stale:  # finished after they were recovered elsewhere: touch nothing
            late: list[Job] = []
            fresh: list[Job] = []
            for job in jobs:
                held = (self._queue(job.queue).key, job.raw)
                (late if registration.take_stale(held) else fresh).append(job)
            self._release_all(late)
            jobs = fresh
            if not jobs:
                return
        by_key: dict[str, list[bytes]] = {}
        queue_of = self._queue
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
        if len(groups := cluster.by_slot(self.keys, jobs, lambda j: queue_of(j.queue).key)) > 1:
            for group in groups:  # a Redis Cluster: one ACK call per slot
                await self.ack_many(group)
            return
        token = registration.fence
        lease = self.keys.queue_lease(self.worker_id, queue_of(jobs[0].queue).key)
        with self._settling():
            removed = await self.conn.execute(
                f"acknowledging {len(jobs)} job(s)",
                ACK.bind([lease, *by_key], [token, *args]),
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
        with self._settling():
            moved = await self._move_out(
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

    async def _dead_letter_raw(self, queue: QueueRef, raw: bytes, reason: str) -> int:
        entry = deadletter.entry(
            queue_key=queue.key, raw=raw, reason=reason, worker_id=self.worker_id
        )
        log.error("dead-lettering a payload from %s: %s (%d bytes)", queue.key, reason, len(raw))
        moved = await self._move_out(
            f"dead-lettering a payload from {queue.key}",
            queue.processing,
            raw,
            self.keys.dead_of(queue.key),
            "rpush",
            0,
            entry,
            queue_key=queue.key,
        )
        self.dead_lettered += moved
        return moved

    async def _dead_letter_all(self, queue: QueueRef, reason: str) -> None:
        """Dead-letter everything in ``queue``'s processing list, reading it in bounded chunks."""
        while True:
            items = await self.conn.execute(
                f"reading the processing list {queue.processing}",
                lambda r: r.lrange(queue.processing, 0, ADOPT_CHUNK - 1),
            )
            moved = 0
            for raw in items:
                moved += await self._dead_letter_raw(queue, _as_bytes(raw), reason)
            if not moved:  # fast mode moves without removing: nothing would ever change
                return

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
        keys = [
            processing,
            destination,
            destination,
            self.keys.queue_lease(self.worker_id, queue_key),
        ]
        reliable = self.mode == "reliable"
        while True:
            if registration.stale and registration.take_stale((queue_key, raw)):
                return 0
            token = registration.fence if reliable else ""
            args: list[Any] = [raw, kind, score, value, "1" if reliable else "0", "", token]
            moved = int(await self.conn.execute(operation, SETTLE.bind(keys, args), write=True))
            if moved >= 0:
                return moved
            await registration.lease_lost(token)

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
        moved = 0
        for queue in self._queues:
            try:
                moved += int(
                    await self.conn.execute(
                        f"requeueing the jobs of worker {self.worker_id} to {queue.key}",
                        REQUEUE_PROCESSING.bind(
                            [queue.processing, queue.key, queue.wake], [WAKE_BOUND]
                        ),
                    )
                )
            except WrongTypeError as exc:
                await self._dead_letter_all(queue, f"could not be requeued: {exc}")
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
