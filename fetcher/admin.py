"""Queue protocol.

Admin: what ``steadfetch top`` and operators read and repair (queues, workers, dead letters)."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from steadfetch.fetcher import codec, deadletter
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.errors import ConfigurationError, DecodeError
from steadfetch.fetcher.keys import Keys, keys_for
from steadfetch.fetcher.registry import split_processing_key
from steadfetch.fetcher.scheduling import promote_due
from steadfetch.fetcher.scripts import WAKE_BOUND, LuaScript
from steadfetch.fetcher.unique import HOLD, call_token, milliseconds

DEAD_LETTER_RETRY = LuaScript.load("dead_letter_retry")
#: Entries read (and retried) per round trip: a bounded reply, a bounded script.
DEAD_LETTER_CHUNK = 100
#: Registry ids read per round trip (SSCAN COUNT, then one MGET of their heartbeats), and keys
#: per SCAN page: with 200,000 ghost ids in the registry (workers long gone, never recovered)
#: one SMEMBERS + MGET was a reply ``top`` never finished reading within its timeout.
REGISTRY_PAGE = 5000
#: Live workers :meth:`Admin.summary` returns at most (the rest are counted).
WORKERS_SHOWN = 200


@dataclass(frozen=True)
class DeadLetterRefusal:
    """One dead-letter entry that :meth:`Admin.dead_letter_retry` left where it was, and why.
    ``job_id``/``queue`` are ``None`` when the entry does not say."""

    job_id: str | None
    queue: str | None
    reason: str


@dataclass
class DeadLetterRetry:
    """What :meth:`Admin.dead_letter_retry` did: ``requeued`` jobs went back to their queue;
    each of ``refused`` stays in the dead-letter list (for "N requeued, M could not be: ...")."""

    requeued: int = 0
    refused: list[DeadLetterRefusal] = field(default_factory=list)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _heartbeat(worker_id: str, beat: bytes | str | None) -> dict[str, Any]:
    """A registered worker's heartbeat as a dict; ``{"worker_id": id, "dead": True}`` when it
    expired (``"dead": False`` when it holds something that is not a JSON object)."""
    try:
        body = json.loads(beat) if beat is not None else None
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"worker_id": worker_id, "dead": beat is None}


async def _total_length(r: Redis, keys: Sequence[str]) -> int:
    """The summed lengths of ``keys`` (lists), in one pipelined round trip."""
    if not keys:
        return 0
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    return sum(int(n) for n in await pipe.execute())


def _tagged_queue(dead_key: str) -> str:
    """``steadfetch:dead:{Q}`` -> ``Q``: the queue a cluster's per-queue key belongs to."""
    return dead_key.partition("{")[2].removesuffix("}")


def _failed_at(entry: dict[str, Any]) -> float:
    """When an entry was dead-lettered; an entry that does not say sorts last."""
    when = entry.get("failed_at")
    return float(when) if isinstance(when, int | float) else math.inf


#: The one eviction policy under which Redis never drops a key to make room.
SAFE_EVICTION_POLICY = "noeviction"


def eviction_warning(endpoint: str, policy: str) -> str | None:
    """What to tell an operator about ``maxmemory-policy`` (None when it is safe)."""
    if policy == SAFE_EVICTION_POLICY:
        return None
    if policy.startswith("volatile-"):
        what = (
            "keys with a TTL (heartbeats and leases) can be evicted under memory pressure, so "
            "live workers look dead and their jobs are recovered and run twice"
        )
    else:
        what = (
            "Redis may evict any key under memory pressure (queues, processing lists, scheduled "
            "retries, the dead-letter list): jobs vanish without a trace"
        )
    return (
        f"Redis {endpoint} has maxmemory-policy {policy}: {what}. Fix: CONFIG SET "
        f"maxmemory-policy {SAFE_EVICTION_POLICY} (and set it in redis.conf); with noeviction a "
        "full Redis refuses writes (an outage steadfetch waits out) instead of losing jobs"
    )


class Admin:
    """Read-mostly view of one Redis (``deadline`` bounds each call, seconds)."""

    def __init__(
        self, conn: RedisConnection, *, keys: Keys | None = None, deadline: float | None = None
    ) -> None:
        self.conn = conn
        self.keys = keys_for(conn, keys)
        self.deadline = deadline

    async def _run(self, operation: str, fn: Any) -> Any:
        return await self.conn.execute(operation, fn, deadline=self.deadline)

    async def _counts(self, r: Redis, queue_keys: Sequence[str]) -> list[int]:
        """One pipelined round trip: each queue's length, then the scheduled and dead-letter
        counts (the last two items)."""
        pipe = r.pipeline(transaction=False)
        for key in queue_keys:
            pipe.llen(key)
        if not self.keys.cluster:
            pipe.zcard(self.keys.scheduled)
            pipe.llen(self.keys.dead)
            return [int(n) for n in await pipe.execute()]
        for key in queue_keys:  # a Redis Cluster: per-queue scheduled zsets and dead lists
            pipe.zcard(self.keys.scheduled_of(key))
            pipe.llen(self.keys.dead_of(key))
        counts = [int(n) for n in await pipe.execute()]
        n = len(queue_keys)
        return [*counts[:n], sum(counts[n::2]), sum(counts[n + 1 :: 2])]

    def _figures(self, queue_keys: Sequence[str], counts: Sequence[int]) -> dict[str, Any]:
        """:meth:`_counts` as ``{"queues": {name: depth}, "scheduled": n, "dead": n}``."""
        return {
            "queues": {
                self.keys.queue_name(k): int(n) for k, n in zip(queue_keys, counts, strict=False)
            },
            "scheduled": int(counts[-2]),
            "dead": int(counts[-1]),
        }

    async def queue_keys(self) -> list[str]:
        """Every steadfetch queue key present, plus the Resque queues named in ``resque:queues``
        (on a cluster also those that only have a scheduled zset or a dead-letter list)."""

        async def run(r: Redis) -> list[str]:
            found = [k async for k in r.scan_iter(match=f"{self.keys.prefix}:queue:*", count=500)]
            resque = await r.smembers(self.keys.resque_queues)
            names = {_text(k) for k in found}
            names |= {self.keys.queue_key("resque:" + _text(n)) for n in resque}
            if self.keys.cluster:  # queues known only by their scheduled or dead-letter keys
                for kind in ("scheduled", "dead"):
                    pattern = f"{self.keys.prefix}:{kind}:{{*}}"
                    async for key in r.scan_iter(match=pattern, count=500):
                        names.add(_tagged_queue(_text(key)))
            return sorted(names)

        result: list[str] = await self._run("listing queues", run)
        return result

    async def eviction_policy(self) -> dict[str, Any]:
        """``{"policy": "noeviction"|...|None, "safe": bool|None, "note": str}``: Redis's
        ``maxmemory-policy``, read with CONFIG GET. Where CONFIG is not permitted (an ACL user
        without +config, a renamed CONFIG command) policy and safe are None and the note says
        that it could not be checked, and why. Outages are retried as usual."""
        endpoint = self.conn.endpoint
        try:
            reply = await self._run(
                "reading maxmemory-policy", lambda r: r.config_get("maxmemory-policy")
            )
        except ConfigurationError as exc:
            return {
                "policy": None,
                "safe": None,
                "note": f"could not check the maxmemory-policy of Redis {endpoint} (CONFIG GET "
                f"refused: {exc}); make sure it is {SAFE_EVICTION_POLICY}, or Redis may evict "
                "jobs",
            }
        values = {_text(k): _text(v) for k, v in dict(reply).items()}
        policy = values.get("maxmemory-policy")
        if policy is None:
            return {
                "policy": None,
                "safe": None,
                "note": f"could not check the maxmemory-policy of Redis {endpoint}: CONFIG GET "
                "returned nothing for it",
            }
        warning = eviction_warning(endpoint, policy)
        return {"policy": policy, "safe": warning is None, "note": warning or "ok"}

    async def status(self) -> dict[str, Any]:
        """``{"queues": {name: depth}, "scheduled": n, "dead": n, "processing": {worker: n},
        "workers": [heartbeat dicts], "eviction_policy": {...}}``.

        ``processing`` is grouped by worker id as the registry knows them (each registered
        worker's processing lists come from its worker-queues set); lists that belong to no
        registered worker (left by a worker that was recovered, or by a version without a
        registry) are found by SCAN and shown under the worker id their key names."""
        queue_keys = await self.queue_keys()
        workers = await self.workers()
        keys = self.keys

        async def run(r: Redis) -> dict[str, Any]:
            counts = await self._counts(r, queue_keys)
            owned: dict[str, str] = {}  # processing key -> registered worker id
            async for ids in self._registry_ids(r):  # bounded replies (REGISTRY_PAGE)
                pipe = r.pipeline(transaction=False)
                for worker_id in ids:
                    pipe.smembers(keys.worker_queues(worker_id))
                for worker_id, members in zip(ids, await pipe.execute(), strict=True):
                    for queue_key in sorted(_text(m) for m in members):
                        owned[keys.processing(worker_id, queue_key)] = worker_id
            async for key in r.scan_iter(match=f"{keys.processing_prefix}*", count=500):
                split = split_processing_key(keys, _text(key))
                owned.setdefault(_text(key), split[0] if split else _text(key))
            pipe = r.pipeline(transaction=False)
            for key in owned:
                pipe.llen(key)
            processing: dict[str, int] = {}
            for worker_id, n in zip(owned.values(), await pipe.execute(), strict=True):
                if n:
                    processing[worker_id] = processing.get(worker_id, 0) + int(n)
            return {
                **self._figures(queue_keys, counts),
                "processing": dict(sorted(processing.items())),
            }

        result: dict[str, Any] = await self._run("reading queue status", run)
        result["workers"] = workers
        result["eviction_policy"] = await self.eviction_policy()
        return result

    async def depths(self, queues: Sequence[str]) -> dict[str, Any]:
        """Depths of the named queues plus the scheduled and dead-letter counts, in one round
        trip and without SCAN: cheap enough for every heartbeat of every worker.
        ``{"queue_depths": {name: n}, "scheduled": n, "dead_letter": n}``."""
        queue_keys = self.keys.queue_keys(queues)

        async def run(r: Redis) -> list[int]:
            return await self._counts(r, queue_keys)

        counts: list[int] = await self._run("reading queue depths", run)
        return {
            "queue_depths": dict(zip(queues, counts, strict=False)),
            "scheduled": counts[-2],
            "dead_letter": counts[-1],
        }

    async def _registry_ids(self, r: Redis) -> AsyncIterator[list[str]]:
        """The registered worker ids a page (SSCAN) at a time: bounded replies however many ids
        are registered. SSCAN may repeat an id."""
        cursor = 0
        while True:
            cursor, members = await r.sscan(self.keys.workers, cursor, count=REGISTRY_PAGE)
            if members:
                yield [_text(m) for m in members]
            if not int(cursor):
                return

    async def _registry_pages(self, r: Redis) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
        """Each page of :meth:`_registry_ids` with the heartbeats (one MGET), or
        ``{"worker_id": id, "dead": True}`` for one that expired."""
        async for ids in self._registry_ids(r):
            beats = await r.mget([self.keys.heartbeat(i) for i in ids])
            yield [(i, _heartbeat(i, beat)) for i, beat in zip(ids, beats, strict=True)]

    async def workers(self) -> list[dict[str, Any]]:
        """Heartbeats of registered workers, sorted by id (a worker whose heartbeat expired
        shows as ``{"worker_id": id, "dead": True}`` until someone recovers it)."""

        async def run(r: Redis) -> list[dict[str, Any]]:
            found = {i: beat async for page in self._registry_pages(r) for i, beat in page}
            return [found[i] for i in sorted(found)]

        result: list[dict[str, Any]] = await self._run("reading worker heartbeats", run)
        return result

    async def summary(self, limit: int = WORKERS_SHOWN) -> dict[str, Any]:
        """What ``top`` shows, in bounded replies whatever the registry holds: ``status()``'s
        ``queues``, ``scheduled`` and ``dead``; ``in_processing`` (jobs in every processing
        list, found by SCAN); ``workers``: at most ``limit`` registered workers that have a
        heartbeat, sorted by id; ``more_workers``: how many more have one; ``stale_workers``:
        registered ids whose heartbeat expired (workers gone, not yet recovered)."""
        queue_keys = await self.queue_keys()

        async def run(r: Redis) -> dict[str, Any]:
            counts = await self._counts(r, queue_keys)
            live: dict[str, dict[str, Any]] = {}  # bounded by the fleet: ghosts are counted
            async for page in self._registry_pages(r):
                live.update((i, beat) for i, beat in page if beat.get("dead") is not True)
            registered = int(await r.scard(self.keys.workers))
            in_processing = 0
            keys: list[str] = []
            async for key in r.scan_iter(match=f"{self.keys.processing_prefix}*", count=500):
                keys.append(_text(key))
                if len(keys) >= REGISTRY_PAGE:
                    in_processing += await _total_length(r, keys)
                    keys = []
            in_processing += await _total_length(r, keys)
            shown = sorted(live)[: max(0, limit)]
            return {
                **self._figures(queue_keys, counts),
                "in_processing": in_processing,
                "workers": [live[i] for i in shown],
                "more_workers": len(live) - len(shown),
                "stale_workers": max(0, registered - len(live)),
            }

        result: dict[str, Any] = await self._run("reading the cluster summary", run)
        return result

    async def dead_lists(self) -> list[str]:
        """The dead-letter lists: the one of a single Redis, or on a cluster every per-queue
        list present (``steadfetch:dead:{Q}``, found by SCAN on every primary), sorted. A key
        whose Q holds a brace is no steadfetch list (queue keys never do), and is left out."""
        if not self.keys.cluster:
            return [self.keys.dead]

        async def run(r: Redis) -> list[str]:
            pattern = f"{self.keys.prefix}:dead:{{*}}"
            found = {_text(k) async for k in r.scan_iter(match=pattern, count=500)}
            return sorted(k for k in found if not set("{}") & set(_tagged_queue(k)))

        result: list[str] = await self._run("listing the dead-letter lists", run)
        return result

    def _queue_of(self, dead_key: str) -> str | None:
        """The queue key whose slot a cluster's dead list ``dead_key`` lives in (None on one
        Redis, where one list holds every queue's entries)."""
        return _tagged_queue(dead_key) if self.keys.cluster else None

    async def dead_letter_list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The oldest ``limit`` dead-letter entries, parsed (on a cluster: the oldest ``limit``
        of every queue's list, merged by ``failed_at``)."""
        if limit < 1:  # LRANGE 0 -1 would read the whole list
            raise ValueError(f"limit must be >= 1, got {limit}")
        entries: list[dict[str, Any]] = []
        for dead in await self.dead_lists():
            raw: list[bytes] = await self._run(
                f"reading the dead-letter list {dead}",
                lambda r, key=dead: r.lrange(key, 0, limit - 1),
            )
            for item in raw:
                try:
                    entries.append(json.loads(item))
                except ValueError:
                    text = item.decode(errors="replace")
                    entries.append({"raw": text, "reason": "unparsable entry"})
            if self.keys.cluster:  # stable: one list keeps its order; bounded by 2 * limit
                entries = sorted(entries, key=_failed_at)[:limit]
        return entries

    async def dead_letter_retry(
        self, limit: int = 1000, *, job_id: str | None = None
    ) -> DeadLetterRetry:
        """Requeue dead-lettered jobs (attempt reset to 1): the oldest ``limit`` entries, or,
        with ``job_id``, every entry of that job (the whole list is searched, in chunks). On a
        cluster the lists of the queues are worked through one after the other, in the order of
        their keys, and ``limit`` counts the entries read over all of them.

        Each job is written to its queue first, with a wake token, and its entry removed only
        after (one script, ``lua/dead_letter_retry.lua``): a write that fails loses nothing. An
        entry that cannot be retried (unparsable, no payload, a payload that is not a job, a
        queue key that is not a queue or holds another type than a list; on a cluster an entry
        naming another queue than the one whose list holds it) stays in the list as it is, and
        the returned :class:`DeadLetterRetry` says why.
        """
        report = DeadLetterRetry()
        examined = 0  # entries read over all lists
        for dead in await self.dead_lists():
            examined += await self._retry_list(dead, limit - examined, job_id, report)
        return report

    async def _retry_list(
        self, dead: str, limit: int, job_id: str | None, report: DeadLetterRetry
    ) -> int:
        """:meth:`dead_letter_retry` over the one list ``dead``; returns the entries read."""
        start = examined = 0  # where the next unread entry is; how many were read
        while True:
            count = DEAD_LETTER_CHUNK
            if job_id is None:
                count = min(count, limit - examined)
            if count <= 0:
                break
            chunk: list[bytes] = await self._run(
                f"reading the dead-letter list {dead}",
                lambda r, s=start, n=count: r.lrange(dead, s, s + n - 1),
            )
            candidates: list[tuple[str, bytes, str, bytes]] = []  # id, entry, queue key, fresh
            for item in chunk:
                prepared = self._prepare_retry(item, self._queue_of(dead))
                if isinstance(prepared, DeadLetterRefusal):
                    if job_id is None or prepared.job_id == job_id:
                        report.refused.append(prepared)
                elif job_id is None or prepared[0] == job_id:
                    candidates.append(prepared)
            requeued = await self._retry_candidates(dead, candidates, report)
            # Requeued entries left the list: the next unread entry moved up by that many.
            start += len(chunk) - requeued
            examined += len(chunk)
            if len(chunk) < count:
                break
        return examined

    def _prepare_retry(
        self, item: bytes, slot_queue: str | None
    ) -> DeadLetterRefusal | tuple[str, bytes, str, bytes]:
        """The fresh payload for one entry, or why it cannot be retried. ``slot_queue``: on a
        cluster, the queue whose dead list holds the entry (one script call stays in one slot)."""
        try:
            body = json.loads(item)
        except ValueError:
            return DeadLetterRefusal(None, None, "the entry is not JSON")
        if not isinstance(body, dict):
            return DeadLetterRefusal(None, None, "the entry is not a JSON object")
        queue_key = body.get("queue")
        payload = deadletter.raw_of(body)
        if not isinstance(queue_key, str) or not queue_key:
            return DeadLetterRefusal(None, None, "the entry names no queue")
        if payload is None:
            return DeadLetterRefusal(None, queue_key, "the entry holds no payload")
        try:
            job = codec.decode(payload, queue_key, self.keys)
        except DecodeError as exc:
            return DeadLetterRefusal(None, queue_key, f"the payload is not a job: {exc.reason}")
        if not queue_key.startswith(
            (f"{self.keys.prefix}:queue:", f"{self.keys.resque_prefix}:queue:")
        ):
            return DeadLetterRefusal(job.id, queue_key, f"{queue_key} is not a queue key")
        if slot_queue is not None and queue_key != slot_queue:
            return DeadLetterRefusal(
                job.id,
                queue_key,
                f"the entry lies in the dead-letter list of {slot_queue}, another slot of the "
                "cluster: requeue it by hand",
            )
        try:
            fresh = codec.encode(
                job_id=job.id,
                task=job.task,
                args=job.args,
                kwargs=job.kwargs,
                queue_key=queue_key,
                attempt=1,
                max_attempts=job.max_attempts,
                enqueued_at=job.enqueued_at,
                format=job.format,
                retry_base=job.retry_base,
                retry_cap=job.retry_cap,
                # Its id is reserved as an enqueue's (lua/dead_letter_retry.lua): the job's own
                # window, else 0 (released when it settles), the rule a durable producer follows.
                unique_for=codec.unique_window(payload) or 0.0,
            )
        except ValueError as exc:
            return DeadLetterRefusal(job.id, queue_key, str(exc))
        return job.id, item, queue_key, fresh

    async def _retry_candidates(
        self, dead: str, candidates: list[tuple[str, bytes, str, bytes]], report: DeadLetterRetry
    ) -> int:
        if not candidates:
            return 0
        keys: list[str] = [dead]
        args: list[Any] = [WAKE_BOUND, call_token(), milliseconds(HOLD)]
        for job_id, item, queue_key, fresh in candidates:
            keys += [queue_key, self.keys.wake(queue_key), self.keys.unique(job_id, queue_key)]
            args += [item, fresh, milliseconds(codec.unique_window(fresh) or 0.0)]
        statuses = await self._run(
            f"requeueing {len(candidates)} dead-lettered job(s) from {dead}",
            DEAD_LETTER_RETRY.bind(keys, args),
        )
        requeued = 0
        for (job_id, _, queue_key, _), status in zip(candidates, statuses, strict=True):
            if status == 1:
                requeued += 1
            elif status != 0:
                report.refused.append(DeadLetterRefusal(job_id, queue_key, _text(status)))
        report.requeued += requeued
        return requeued

    async def dead_letter_purge(self) -> int:
        """Delete every dead-letter entry (on a cluster: every queue's list); returns how many
        there were."""
        purged = 0
        for dead in await self.dead_lists():

            async def run(r: Redis, key: str = dead) -> int:
                pipe = r.pipeline(transaction=True)  # one key: one slot on a cluster too
                pipe.llen(key)
                pipe.delete(key)
                count, _ = await pipe.execute()
                return int(count)

            purged += await self._run(f"purging the dead-letter list {dead}", run)
        return purged

    async def promote_due(self, limit: int = 1000) -> int:
        queue_keys = await self.queue_keys() if self.keys.cluster else []
        return await promote_due(self.conn, self.keys, limit, queue_keys)
