"""Queue protocol. Enqueue API: async :class:`Producer` and blocking :class:`SyncProducer`.

One job or many in one round trip (one script, ``lua/enqueue.lua``), immediate or delayed (``delay``
seconds or an ``eta`` unix time: the scheduled set), in steadfetch or Resque format. Each
immediate push also leaves a wake token so an idle fetcher wakes at once. A retried enqueue
after an ambiguous failure may push a job twice (both copies carry the same job id), unless the
job reserves its id (``unique_for``, :mod:`fetcher.unique`): then it is written once, and an
enqueue of an id already reserved writes nothing and returns an id marked ``duplicate``.
A queue key that holds another type than a list is refused before anything is written
(:class:`fetcher.errors.WrongTypeError`), for delayed jobs too: they would fail at promotion.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steadfetch.fetcher import cluster, codec
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.job import JobFormat
from steadfetch.fetcher.keys import RESQUE_NAME_PREFIX, Keys, keys_for
from steadfetch.fetcher.retry import RetryPolicy
from steadfetch.fetcher.scripts import WAKE_BOUND, LuaScript
from steadfetch.fetcher.unique import HOLD, EnqueuedId, call_token, milliseconds

ENQUEUE = LuaScript.load("enqueue")


@dataclass(frozen=True)
class JobSpec:
    """One job to enqueue (for :meth:`Producer.enqueue_many`)."""

    task: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "default"
    job_id: str | None = None
    delay: float | None = None
    eta: float | None = None
    max_attempts: int | None = None  # None: the worker decides (task setting, else its default)
    format: JobFormat = "steadfetch"
    retry_base: float | None = None  # this job's retry backoff; None: the worker decides
    retry_cap: float | None = None
    # Reserve the job id while the job lives and this many seconds after it finished
    # (fetcher.unique); None: the producer's default (no reservation unless it sets one).
    unique_for: float | None = None


@dataclass(frozen=True)
class _Encoded:
    job_id: str
    queue_key: str
    resque_name: str | None  # for SADD resque:queues
    payload: bytes
    due: float | None
    unique_for: float | None


def _encode(spec: JobSpec, keys: Keys, now: float, unique_for: float | None) -> _Encoded:
    if not spec.task:
        raise ValueError("task must be a non-empty name")
    if spec.delay is not None and spec.eta is not None:
        raise ValueError("give delay or eta, not both")
    if spec.max_attempts is not None and spec.max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {spec.max_attempts}")
    for name, seconds in (("retry_base", spec.retry_base), ("retry_cap", spec.retry_cap)):
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"{name} must be a number of seconds > 0, got {seconds}")
    if spec.unique_for is not None:
        unique_for = spec.unique_for
    if unique_for is not None and not (math.isfinite(unique_for) and unique_for >= 0):
        raise ValueError(f"unique_for must be a number of seconds >= 0, got {unique_for}")
    queue = spec.queue
    if spec.format == "resque" and not queue.startswith(RESQUE_NAME_PREFIX):
        queue = RESQUE_NAME_PREFIX + queue
    queue_key = keys.queue_key(queue)
    # A Resque queue holds Resque payloads, whoever wrote them: a steadfetch payload there
    # fails every Resque worker ('No job defined for class "undefined"').
    job_format: JobFormat = "resque" if keys.is_resque(queue_key) else spec.format
    job_id = spec.job_id or codec.new_job_id()
    payload = codec.encode(
        job_id=job_id,
        task=spec.task,
        args=spec.args,
        kwargs=spec.kwargs,
        queue_key=queue_key,
        attempt=1,
        max_attempts=spec.max_attempts,
        retry_base=spec.retry_base,
        retry_cap=spec.retry_cap,
        enqueued_at=now,
        format=job_format,
        unique_for=unique_for,
    )
    due = (
        spec.eta if spec.eta is not None else (now + spec.delay if spec.delay is not None else None)
    )
    if due is not None and not math.isfinite(due):
        raise ValueError(f"delay and eta must be finite numbers, got {spec.delay or spec.eta!r}")
    resque_name = queue.removeprefix(RESQUE_NAME_PREFIX) if keys.is_resque(queue_key) else None
    return _Encoded(job_id, queue_key, resque_name, payload, due, unique_for)


class Producer:
    """Enqueues jobs through a :class:`RedisConnection` (retries follow its policy).

    ``deadline`` bounds each call (seconds; ``None`` = the connection's policy). ``unique_for``:
    every job reserves its id for that many seconds after it finished, unless its spec says
    otherwise (``None``: no reservation, the default; see :mod:`fetcher.unique`).
    """

    def __init__(
        self,
        conn: RedisConnection,
        *,
        keys: Keys | None = None,
        deadline: float | None = None,
        unique_for: float | None = None,
    ) -> None:
        self.conn = conn
        self.keys = keys_for(conn, keys)
        self.deadline = deadline
        self.unique_for = unique_for

    async def enqueue(
        self,
        task: str,
        *args: Any,
        queue: str = "default",
        job_id: str | None = None,
        delay: float | None = None,
        eta: float | None = None,
        max_attempts: int | None = None,
        format: JobFormat = "steadfetch",
        retry_base: float | None = None,
        retry_cap: float | None = None,
        unique_for: float | None = None,
        **kwargs: Any,
    ) -> EnqueuedId:
        """Enqueue one job; returns its id (``.duplicate``: nothing written, the id is reserved).
        (Job kwargs cannot use this method's own names; use :class:`JobSpec` with
        :meth:`enqueue_many` for those.)"""
        spec = JobSpec(task, args, kwargs, queue, job_id, delay, eta, max_attempts, format,
                       retry_base, retry_cap, unique_for)  # fmt: skip
        return (await self.enqueue_many([spec]))[0]

    async def enqueue_many(self, specs: Iterable[JobSpec | Mapping[str, Any]]) -> list[EnqueuedId]:
        """Enqueue many jobs in one round trip (one transaction); returns their ids in order,
        each marked ``duplicate`` when its id was reserved and nothing was written for it."""
        now = time.time()
        unique_for = self.unique_for
        if unique_for is None and self.conn.durability is not None:
            unique_for = 0.0  # an unconfirmed write is retried: the reservation makes it safe
        encoded = [
            _encode(s if isinstance(s, JobSpec) else JobSpec(**s), self.keys, now, unique_for)
            for s in specs
        ]
        if not encoded:
            return []
        groups = cluster.by_slot(self.keys, encoded, lambda e: e.queue_key)
        if len(groups) > 1:  # a Redis Cluster: one transaction per queue (its slot)
            done: dict[int, EnqueuedId] = {}
            for group in groups:
                for e, result in zip(group, await self._enqueue(group, now), strict=True):
                    done[id(e)] = result
            return [done[id(e)] for e in encoded]
        return await self._enqueue(encoded, now)

    async def _enqueue(self, encoded: list[_Encoded], now: float) -> list[EnqueuedId]:
        """One ENQUEUE call for ``encoded`` (all in one slot)."""
        queues = sorted({e.queue_key for e in encoded})
        index = {queue_key: i for i, queue_key in enumerate(queues, 1)}
        resque = sorted({e.resque_name for e in encoded if e.resque_name is not None})
        reserved = sorted({e.job_id for e in encoded if e.unique_for is not None})
        slot = {job_id: i for i, job_id in enumerate(reserved, 1)}
        on_cluster = self.keys.cluster
        if on_cluster and resque:  # Resque's name set is in another slot than the queue
            await self.conn.execute(
                "adding Resque queue names to " + self.keys.resque_queues,
                lambda r: r.sadd(self.keys.resque_queues, *resque),
                deadline=self.deadline,
            )
        keys = [
            self.keys.scheduled_of(queues[0]),
            queues[0] if on_cluster else self.keys.resque_queues,  # unused there (no names)
            *queues,
            *(self.keys.wake(q) for q in queues),
            *(self.keys.unique(job_id, queues[0]) for job_id in reserved),
        ]
        names_added = [] if on_cluster else resque
        args: list[Any] = [WAKE_BOUND, len(queues), len(names_added), *names_added, call_token()]
        for e in encoded:
            due = "" if e.due is None else repr(e.due)
            args += [index[e.queue_key], due, e.payload]
            if e.unique_for is None:
                args += [0, 0, 0]
            else:
                hold = HOLD + (max(0.0, e.due - now) if e.due is not None else 0.0)
                args += [slot[e.job_id], milliseconds(e.unique_for), milliseconds(hold)]
        names = ", ".join(self.keys.queue_name(q) for q in queues)
        flags = await self.conn.execute(
            f"enqueueing {len(encoded)} job(s) to [{names}]",
            ENQUEUE.bind(keys, args),
            deadline=self.deadline,
            write=True,
        )
        pairs = zip(encoded, flags, strict=True)
        return [EnqueuedId(e.job_id, duplicate=not int(flag)) for e, flag in pairs]


class SyncProducer:
    """Blocking enqueue for scripts and CLIs: owns a private event loop and connection.

    Every call gives up after ``deadline`` seconds of outage with RedisUnavailable. Not for use
    inside a running event loop (use :class:`Producer` there). Close it, or use ``with``.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        deadline: float = 30.0,
        keys: Keys | None = None,
        unique_for: float | None = None,
    ) -> None:
        self._runner = asyncio.Runner()
        self.conn = RedisConnection.from_url(
            url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=RetryPolicy(deadline=deadline),
            name=None,
        )
        self._producer = Producer(self.conn, keys=keys, unique_for=unique_for)

    def __repr__(self) -> str:
        return f"<SyncProducer {self.conn.endpoint}>"

    def enqueue(
        self,
        task: str,
        *args: Any,
        queue: str = "default",
        job_id: str | None = None,
        delay: float | None = None,
        eta: float | None = None,
        max_attempts: int | None = None,
        format: JobFormat = "steadfetch",
        retry_base: float | None = None,
        retry_cap: float | None = None,
        unique_for: float | None = None,
        **kwargs: Any,
    ) -> EnqueuedId:
        spec = JobSpec(task, args, kwargs, queue, job_id, delay, eta, max_attempts, format,
                       retry_base, retry_cap, unique_for)  # fmt: skip
        return self.enqueue_many([spec])[0]

    def enqueue_many(self, specs: Iterable[JobSpec | Mapping[str, Any]]) -> list[EnqueuedId]:
        return self._runner.run(self._producer.enqueue_many(list(specs)))

    def close(self) -> None:
        try:
            self._runner.run(self.conn.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
