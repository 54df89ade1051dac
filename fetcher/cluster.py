"""Queue protocol.

On a Redis Cluster: the calls that a single Redis makes in one script and a cluster must split
so that each script call touches one hash slot (docs/CONTRACTS.md, "Redis
Cluster"). The key layout is :class:`fetcher.keys.Keys` with ``cluster=True``: every key of one
queue is in that queue's slot, and the registry keys share the ``{prefix}`` slot.

- Fetch: one call per slot, in priority order (:func:`slot_groups`); idle, a block on one slot
  at a time (:func:`block_by_slot`).
- Fencing: the worker's lease token is copied into each of its queues' slots after every claim
  and beat (:func:`mirror_leases`), so ack/settle check it in the same script as the list.
- Recovery (:func:`recover`): the registry is read in its slot, then each dead worker's lists are
  moved by ``recover_queue.lua`` in their queue's slot (only while the lease copy there is gone),
  then ``forget_worker.lua`` drops it from the registry unless it came back. The sweep of
  unregistered workers' lists (:func:`give_back_orphan`) checks the registry, then moves.
- Promotion (:func:`promote`): per queue, ``promote_queue.lua`` on that queue's scheduled zset.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis

from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.keys import Keys, QueueRef
from steadfetch.fetcher.scripts import WAKE_BOUND, LuaScript

T = TypeVar("T")

MIRROR_LEASE = LuaScript.load("mirror_lease")
RECOVER_QUEUE = LuaScript.load("recover_queue")
FORGET_WORKER = LuaScript.load("forget_worker")
PROMOTE_QUEUE = LuaScript.load("promote_queue")

#: While idle on a cluster, a fetcher over queues in several slots blocks on one slot's wake
#: lists at a time, for at most this long each (one BLPOP cannot span slots): a job pushed to
#: another slot's queue waits at most this long per other slot before it is noticed.
BLOCK_SLICE = 0.5


def blpop(keys: list[str], timeout: float) -> Callable[[Redis], Awaitable[Any]]:
    """``fn(client)`` for ``execute``: BLPOP on ``keys`` (all in one slot) for ``timeout`` s."""
    return lambda r: r.blpop(keys, timeout)


async def block_by_slot(
    conn: RedisConnection,
    groups: Sequence[Sequence[QueueRef]],
    *,
    fast: bool,
    block_timeout: float,
    operation: str,
) -> Any:
    """Queues in several slots: one BLPOP cannot span slots, so block on one slot's wake lists
    (fast mode: its queues) at a time, for :data:`BLOCK_SLICE` each, until ``block_timeout``. The
    first BLPOP reply (``[key, value]``), ``None`` at the timeout. After a wake token the
    fetcher takes over every queue in priority order; in fast mode it hands the popped job over
    at once, as in the one-slot path."""
    deadline = time.monotonic() + block_timeout
    while True:
        for queues in groups:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = min(BLOCK_SLICE, left)
            watched = [q.key if fast else q.wake for q in queues]
            popped = await conn.execute(operation, blpop(watched, wait), block_timeout=wait)
            if popped is not None:
                return popped


def slot_groups(keys: Keys, queues: Sequence[QueueRef]) -> list[list[QueueRef]]:
    """``queues`` split into runs that one script call may touch, keeping priority order: all of
    them on a single Redis; on a cluster one queue per call (each queue has its own hash tag)."""
    if not keys.cluster:
        return [list(queues)] if queues else []
    return [[queue] for queue in queues]


def by_slot(keys: Keys, items: Iterable[T], queue_key: Callable[[T], str]) -> list[list[T]]:
    """``items`` grouped by the slot of their queue (one group on a single Redis), in first-seen
    order."""
    if not keys.cluster:
        group = list(items)
        return [group] if group else []
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(keys.tag(queue_key(item)), []).append(item)
    return list(groups.values())


async def mirror_leases(
    conn: RedisConnection,
    keys: Keys,
    worker_id: str,
    token: str,
    ttl_ms: int,
    queue_keys: Sequence[str],
) -> None:
    """Copy the lease token into every queue's slot (cluster only; a no-op otherwise)."""
    if not keys.cluster:
        return
    for queue_key in queue_keys:
        await conn.execute(
            f"copying the lease of worker {worker_id} to the slot of {queue_key}",
            MIRROR_LEASE.bind([keys.queue_lease(worker_id, queue_key)], [token, ttl_ms]),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


NOT_A_LIST = "value of another type than a list"
NOT_A_SET = "value of another type than a set"


async def recover(
    conn: RedisConnection, keys: Keys, *, caller: str | None = None
) -> tuple[int, list[tuple[str, int]], list[tuple[str, str]]]:
    """Recovery of dead workers on a cluster (module docstring). Returns (jobs moved,
    [(dead worker id, jobs moved from it), ...] for the workers removed from the registry,
    [(key left alone, why), ...]: a key of another type than steadfetch keeps there)."""

    broken: list[tuple[str, str]] = []

    async def dead_workers(r: Redis) -> list[tuple[str, list[str]]]:
        broken.clear()  # this attempt's findings only (the call may be retried)
        ids = sorted(_text(m) for m in await r.smembers(keys.workers))
        found: list[tuple[str, list[str]]] = []
        for worker_id in ids:
            if worker_id == caller or await r.exists(keys.heartbeat(worker_id)):
                continue
            qset = keys.worker_queues(worker_id)
            if await r.type(qset) not in (b"set", b"none"):  # clients never decode replies
                broken.append((qset, NOT_A_SET))
                found.append((worker_id, []))
                continue
            queues = await r.smembers(qset)
            found.append((worker_id, sorted(_text(q) for q in queues)))
        return found

    dead = await conn.execute("reading the registry for dead workers", dead_workers)
    moved = 0
    removed: list[tuple[str, int]] = []
    for worker_id, queue_keys in dead:
        from_this = 0
        for queue_key in queue_keys:
            n = await _recover_list(conn, keys, worker_id, queue_key, caller or "")
            if n < 0:
                broken.append((keys.processing(worker_id, queue_key), NOT_A_LIST))
            from_this += max(n, 0)
        registry_keys = [
            keys.workers,
            keys.heartbeat(worker_id),
            keys.lease(worker_id),
            keys.worker_queues(worker_id),
        ]
        forgotten = await conn.execute(
            f"removing dead worker {worker_id} from the registry",
            FORGET_WORKER.bind(registry_keys, [worker_id]),
        )
        moved += from_this
        if int(forgotten):
            removed.append((worker_id, from_this))
    return moved, removed, broken


async def give_back_orphan(
    conn: RedisConnection, keys: Keys, worker_id: str, queue_key: str
) -> int:
    """The sweep's step for one processing list on a cluster (orphans.lua on one Redis): only
    when ``worker_id`` is neither registered nor alive (checked in the registry slot), its list
    goes back by ``recover_queue.lua`` (which re-checks the lease copy in the queue's slot)."""

    async def gone(r: Redis) -> bool:
        registered = await r.sismember(keys.workers, worker_id)
        alive = await r.exists(keys.heartbeat(worker_id), keys.lease(worker_id))
        return not registered and not alive

    if not await conn.execute(f"checking that worker {worker_id} is gone", gone):
        return 0
    return await _recover_list(conn, keys, worker_id, queue_key, "")


async def _recover_list(
    conn: RedisConnection, keys: Keys, worker_id: str, queue_key: str, caller: str
) -> int:
    """``recover_queue.lua`` for one (worker, queue) list, in the queue's slot."""
    script_keys = [
        keys.processing(worker_id, queue_key),
        queue_key,
        keys.wake(queue_key),
        keys.dead_of(queue_key),
        keys.queue_lease(worker_id, queue_key),
    ]
    args = [worker_id, WAKE_BOUND, time.time(), caller]
    return int(
        await conn.execute(
            f"recovering the jobs of dead worker {worker_id} from {queue_key}",
            RECOVER_QUEUE.bind(script_keys, args),
        )
    )


async def promote(
    conn: RedisConnection, keys: Keys, queue_keys: Sequence[str], limit: int = 1000
) -> int:
    """Promote due scheduled jobs of ``queue_keys`` on a cluster, one call per queue."""
    moved = 0
    for queue_key in queue_keys:
        script_keys = [
            keys.scheduled_of(queue_key),
            queue_key,
            keys.wake(queue_key),
            keys.dead_of(queue_key),
        ]
        args: list[Any] = [time.time(), limit, WAKE_BOUND]
        moved += int(
            await conn.execute(
                f"promoting due scheduled jobs of {queue_key}",
                PROMOTE_QUEUE.bind(script_keys, args),
            )
        )
    return moved
