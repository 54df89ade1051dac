"""Queue protocol.

Moving payloads out of this worker's processing lists, fenced by its lease: one payload to the
dead-letter list or the schedule (the SETTLE script, :meth:`Settler.move_out`), an undecodable
one dead-lettered with its raw bytes, and at shutdown everything left given back to the queues.
The Fetcher (:mod:`fetcher.fetch`) owns one :class:`Settler`; a payload that was recovered
elsewhere while this worker was presumed dead is never moved (``fetcher.registry``: stale).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from redis.asyncio import Redis

from steadfetch.fetcher import deadletter
from steadfetch.fetcher.adoption import ADOPT_CHUNK, as_bytes
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.errors import WrongTypeError
from steadfetch.fetcher.keys import Keys, QueueRef
from steadfetch.fetcher.registry import WorkerRegistration
from steadfetch.fetcher.scripts import REQUEUE_PROCESSING, SETTLE, WAKE_BOUND

log = logging.getLogger("fetcher.settle")


class Settler:
    """Moves payloads out of ``worker_id``'s processing lists (``reliable``: only if still there,
    fenced by ``registration``'s lease)."""

    def __init__(
        self,
        conn: RedisConnection,
        keys: Keys,
        worker_id: str,
        registration: WorkerRegistration,
        *,
        reliable: bool,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.worker_id = worker_id
        self.registration = registration
        self.reliable = reliable
        #: Payloads dead-lettered here (undecodable: never handed to the worker).
        self.dead_lettered = 0

    async def move_out(
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
        registration = self.registration
        lease = self.keys.queue_lease(self.worker_id, queue_key)  # the lease itself off a cluster
        keys = [processing, destination, destination, lease]
        check = "1" if self.reliable else "0"
        attempts = 0  # a repeat asks the script whether an earlier attempt moved it already

        def settle(client: Redis) -> Awaitable[Any]:
            nonlocal attempts
            attempts += 1
            again = "1" if attempts > 1 else ""
            return SETTLE.bind(keys, [raw, kind, score, value, check, "", token, again])(client)

        while True:
            if registration.stale and registration.take_stale((queue_key, raw)):
                return 0
            token = registration.fence if self.reliable else ""
            moved = int(await self.conn.execute(operation, settle, write=True))
            if moved >= 0:
                return moved
            await registration.lease_lost(token)

    async def dead_letter_raw(self, queue: QueueRef, raw: bytes, reason: str) -> int:
        """Dead-letter one payload of ``queue``'s processing list as it is (raw bytes)."""
        entry = deadletter.entry(
            queue_key=queue.key, raw=raw, reason=reason, worker_id=self.worker_id
        )
        log.error("dead-lettering a payload from %s: %s (%d bytes)", queue.key, reason, len(raw))
        moved = await self.move_out(
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
                moved += await self.dead_letter_raw(queue, as_bytes(raw), reason)
            if not moved:  # fast mode moves without removing: nothing would ever change
                return

    async def give_back_all(self, queues: Iterable[QueueRef]) -> int:
        """Everything in the processing lists of ``queues`` goes back to the head of its queue,
        order preserved; a queue key of another type gets them dead-lettered instead. Returns
        the number of jobs moved."""
        moved = 0
        for queue in queues:
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
        return moved
