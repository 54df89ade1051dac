"""Queue protocol.

Lost replies and adoption: what one Fetcher holds, what it may have lost, and reading it back.

A call that moves payloads into this worker's processing lists (the FETCH script, BLMOVE) may
fail after the server ran it: its reply is lost, the payloads sit in the processing list and
nobody holds them. Such a call is never repeated blindly (a reply too large for the server's
``client-output-buffer-limit`` is lost every time, and each retry would move another batch):
:meth:`Adoption.moving` runs it at most once per reply and marks orphans as possible, and the
Fetcher adopts them (:meth:`Adoption.orphans`) before it takes anything more.

This module keeps the state that decision needs, in one place: the payloads handed out and not
settled (``in_flight``: what is NOT an orphan), whether orphans may exist, the byte budget of a
reply (halved after each lost reply down to :data:`MIN_FETCH_BYTES`, doubled back after
:data:`GROW_AFTER` good ones), and the settles running concurrently with an adoption read. The
Fetcher (:mod:`fetcher.fetch`) owns one :class:`Adoption` and decodes what it returns.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from redis.asyncio import Redis

from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.keys import Keys, QueueRef
from steadfetch.fetcher.scripts import WAKE_BOUND, LuaScript

ADOPT_READ = LuaScript.load("adopt_read")
GIVE_BACK = LuaScript.load("give_back")

T = TypeVar("T")
log = logging.getLogger("fetcher.adoption")

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


class Lost:
    """What :meth:`Adoption.moving` returns instead of a result when the reply may be lost."""


LOST = Lost()


def as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class Adoption:
    """One Fetcher's held payloads, lost-reply bookkeeping, reply byte budget and adoption.

    ``queues`` are the Fetcher's queue records in priority order; ``operation`` names its calls
    in outage log lines. In fast mode (``reliable`` false) nothing is held and nothing adopted.
    """

    def __init__(
        self,
        conn: RedisConnection,
        keys: Keys,
        worker_id: str,
        queues: Sequence[QueueRef],
        *,
        reliable: bool,
        max_payload_bytes: int,
        operation: str,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.worker_id = worker_id
        self.queues = list(queues)
        self.reliable = reliable
        self.max_payload_bytes = max_payload_bytes
        self.operation = operation
        # Payloads handed out and not yet settled, by (queue key, raw): what is NOT an orphan.
        self.in_flight: Counter[tuple[str, bytes]] = Counter()
        # True when payloads may sit in our processing lists that nobody holds: at start (a
        # previous run with this worker id) and after a fetch whose reply may have been lost.
        self.orphans_possible = reliable
        self.fetch_bytes = DEFAULT_FETCH_BYTES  # the byte budget now (see the module docstring)
        self.lost_in_a_row = 0
        # Of those, lost with the budget already at its floor: only these say "too big".
        self.lost_at_floor = 0
        self._good_in_a_row = 0
        # Acks/settles begun, and those still running: adoption notices concurrent ones (one
        # that began before it may still remove a held payload while it reads).
        self._settles_begun = 0
        self._settles_running = 0

    # -- what is held --------------------------------------------------------------------------

    def release(self, held: Iterable[tuple[str, bytes]]) -> None:
        """Forget settled (or never handed out) payloads, by (queue key, raw)."""
        for pair in held:
            take_one(self.in_flight, pair)

    def forget_all(self) -> None:
        """Everything in the processing lists went back to the queues: nothing is held."""
        self.in_flight.clear()
        self.orphans_possible = False

    @contextmanager
    def settling(self) -> Iterator[None]:
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

    # -- replies that may be lost ----------------------------------------------------------------

    async def moving(
        self, fn: Callable[[Redis], Awaitable[T]], *, block_timeout: float | None = None
    ) -> T | Lost:
        """Run a call that moves payloads into our processing lists, at most once per reply: after
        a failed attempt (its reply may have been lost after the script ran) the call is not
        repeated but returns ``LOST``, with orphans marked for adoption and the byte budget
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
            result = await self.conn.execute(self.operation, attempt, block_timeout=block_timeout)
        except _ReplyMaybeLost:
            self._reply_lost()
            return LOST
        except BaseException:
            self.orphans_possible = self.reliable
            raise
        self._reply_received()
        return result

    def _reply_lost(self) -> None:
        """A reply that moved (or read) payloads may have been lost: adopt, and shrink the next
        replies (a reply over the server's output-buffer limit is lost every time)."""
        self.orphans_possible = self.reliable
        self.lost_in_a_row += 1
        # A reply lost at the floor budget could only be lost for its size if every payload
        # were smaller: those count towards "unreceivable", not the attempts that shrank the
        # budget (a 1.5 s cut fails five fetches on its own: output-buffer in docker then
        # dead-lettered four receivable 40 KB jobs).
        self.lost_at_floor = self.lost_at_floor + 1 if self.fetch_bytes <= MIN_FETCH_BYTES else 0
        self._good_in_a_row = 0
        smaller = max(MIN_FETCH_BYTES, self.fetch_bytes // 2)
        if smaller < self.fetch_bytes or self.lost_in_a_row == LOST_LIMIT:
            log.warning(
                "worker %s: %d fetch repl%s in a row may have been lost; adopting what they "
                "moved before taking more, with replies bounded to %d bytes (if this repeats "
                "while Redis is reachable, its replies exceed client-output-buffer-limit)",
                self.worker_id,
                self.lost_in_a_row,
                "y" if self.lost_in_a_row == 1 else "ies",
                smaller,
            )
        self.fetch_bytes = smaller

    def _reply_received(self) -> None:
        self.lost_in_a_row = self.lost_at_floor = 0
        self._good_in_a_row += 1
        if self._good_in_a_row >= GROW_AFTER and self.fetch_bytes < DEFAULT_FETCH_BYTES:
            self.fetch_bytes = min(DEFAULT_FETCH_BYTES, self.fetch_bytes * 2)
            self._good_in_a_row = 0

    # -- adoption ------------------------------------------------------------------------------

    def _oversize(self) -> tuple[int, str]:
        """Payloads bigger than this are dead-lettered server-side by an adoption read, and why.

        ``max_payload_bytes`` (no held job can be bigger: it was decoded); after LOST_LIMIT lost
        replies in a row at the floor budget, and only while this worker holds no job at all
        (so none of its own can match), the floor itself: a payload that big cannot reach us."""
        if self.lost_at_floor >= LOST_LIMIT and not self.in_flight:
            return self.fetch_bytes, (
                f"could not be received: {self.lost_in_a_row} replies in a row that carried it "
                "were lost (larger than the server's client-output-buffer-limit?)"
            )
        return self.max_payload_bytes, f"exceeds the limit of {self.max_payload_bytes}"

    async def orphans(self, max_jobs: int) -> list[tuple[QueueRef, bytes]]:
        """Payloads in our processing lists that no caller holds (at most ``max_jobs``), reading
        the lists in slices bounded in items and bytes; the caller decodes and holds them."""
        held = Counter(self.in_flight)  # snapshot first: an ack racing the read is still held
        begun_before, running_before = self._settles_begun, self._settles_running
        orphans: list[tuple[QueueRef, bytes]] = []
        more = slices = 0
        for queue in self.queues:
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
        raced = slices > len(self.queues) and (
            running_before > 0 or self._settles_begun != begun_before
        )
        self.orphans_possible = bool(more) or len(orphans) > max_jobs or raced
        if orphans:
            log.warning(
                "worker %s adopts %d job(s) left in its processing lists (a lost reply or an "
                "earlier run with this worker id)",
                self.worker_id,
                min(len(orphans), max_jobs),
            )
        return orphans[:max_jobs]

    async def _read_slice(self, queue: QueueRef, start: int) -> tuple[int, bool, list[bytes]]:
        """One bounded slice of ``queue``'s processing list from ``start``: (next start, whether
        the list ends there, payloads). A lost reply shrinks the budget for the retry."""
        attempts = 0

        def read(r: Redis) -> Awaitable[Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                self._reply_lost()
                if self.in_flight and self.lost_in_a_row % GIVE_BACK_AFTER == 0:
                    raise _CannotReceive
            oversize, why = self._oversize()
            keys = [queue.processing, self.keys.dead_of(queue.key)]
            args = [start, ADOPT_CHUNK, self.fetch_bytes, oversize, queue.key, time.time()]
            return ADOPT_READ(r, keys, [*args, self.worker_id, why])

        try:
            following, ended, items = await self.conn.execute(self.operation, read)
        except _CannotReceive:
            await self._give_back(queue)
            return start, True, []
        self._reply_received()
        return int(following), bool(ended), [as_bytes(item) for item in items]

    async def _give_back(self, queue: QueueRef) -> None:
        """Say that this worker cannot receive what it holds in ``queue``'s processing list, and
        give back every payload there that it does not hold (another worker, or this one once
        idle, can take them; one that nobody can receive is then dead-lettered server-side)."""
        held = [
            hashlib.sha1(raw, usedforsecurity=False).hexdigest()
            for (key, raw), count in self.in_flight.items()
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
            self.lost_in_a_row,
            len(self.in_flight),
            int(given),
            queue.key,
        )


def take_one(counts: Counter[Any], key: object) -> bool:
    """Remove one ``key`` from the multiset ``counts`` (leaving no zero behind); whether it was
    there. Payloads are counted, not set: identical bytes fetched twice are two entries."""
    count = counts.get(key, 0)
    if not count:
        return False
    if count > 1:
        counts[key] = count - 1
    else:
        del counts[key]
    return True
