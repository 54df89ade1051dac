"""A steady producer of unique-id jobs over a direct connection to Redis (never the proxy).

Each enqueue is recorded as ``invoke`` and then ``ok`` (Redis acknowledged it), or ``info`` when
the outcome is unknown (an exception: the RPUSH may have landed before the reply was lost). A
failed enqueue is never retried by the producer itself, so a job id is pushed at most once by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from redis.asyncio.cluster import RedisCluster

from steadfetch.chaos.failover import replication_of
from steadfetch.chaos.history import History
from steadfetch.fetcher import JobSpec, Producer, RedisConnection, RetryPolicy
from steadfetch.fetcher.durability import Durability

TASK = "record"
QUEUE = "default"


class SteadyProducer:
    """Enqueues ``record`` jobs named ``{prefix}-{n:06d}`` at ``rate`` per second until stopped.

    ``deadline`` bounds one enqueue (Redis itself may be down during a Redis fault; the producer
    then records ``info`` and keeps its pace instead of queueing up behind the outage). Each job
    goes to one of ``queues`` (seeded choice); ``pad`` bytes of payload make large jobs;
    ``jitter`` spreads each job's ``work`` by up to that fraction (seeded), so that the runners
    finish out of step and the fetch finds one or two free slots, not a whole batch.
    """

    def __init__(
        self,
        url: str,
        history: History,
        *,
        prefix: str,
        rate: float = 20.0,
        work: float = 0.02,
        rng: random.Random | None = None,
        deadline: float = 1.0,
        queues: tuple[str, ...] = (QUEUE,),
        pad: int = 0,
        track_replication: bool = False,
        durability: Durability | None = None,
        jitter: float = 0.0,
    ) -> None:
        self.history = history
        self.jitter = jitter
        self.prefix = prefix
        self.rate = rate
        self.work = work
        self.rng = rng or random.Random()
        self.queues = queues
        self.pad = "x" * pad
        self.conn = RedisConnection.from_url(
            url,
            connect_timeout=0.5,
            read_timeout=1.0,
            retry=RetryPolicy(base=0.05, cap=0.25, deadline=deadline),
            name="chaos-producer",
            durability=durability,
        )
        self.producer = Producer(self.conn, deadline=deadline)
        # Failover scenarios: each acknowledged enqueue carries the primary's replication id and
        # offset read right after it (chaos.failover tells Redis's losses from the worker's).
        self.track_replication = track_replication
        self._count = 0
        self._stop = asyncio.Event()

    @property
    def count(self) -> int:
        return self._count

    def stop(self) -> None:
        self._stop.set()

    def _next_id(self) -> str:
        self._count += 1
        return f"{self.prefix}-{self._count:06d}"

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "work" not in kwargs:
            spread = self.jitter * self.rng.uniform(-1.0, 1.0) if self.jitter else 0.0
            kwargs["work"] = self.work * (1.0 + spread)
        if self.pad:
            kwargs.setdefault("pad", self.pad)
        return kwargs

    async def enqueue(self, **kwargs: Any) -> str:
        """Enqueue one job now (recorded); returns its id whatever the outcome."""
        job_id = self._next_id()
        queue = self.rng.choice(self.queues)
        self.history.record("producer", "enqueue", "invoke", job_id=job_id, queue=queue)
        try:
            await self.producer.enqueue(
                TASK, job_id, queue=queue, job_id=job_id, **self._kwargs(kwargs)
            )
        except Exception as exc:  # noqa: BLE001 -- any failure is an unknown outcome, recorded
            self.history.record(
                "producer", "enqueue", "info", job_id=job_id, error=f"{type(exc).__name__}: {exc}"
            )
        else:
            where = await self._where(self.producer.keys.queue_key(queue))
            self.history.record("producer", "enqueue", "ok", job_id=job_id, **where)
        return job_id

    async def _where(self, queue_key: str) -> dict[str, Any]:
        """The replication position after an acknowledged enqueue (failover scenarios only): of
        the primary, or on a Redis Cluster of the primary serving ``queue_key``'s slot."""
        if not self.track_replication:
            return {}
        found: dict[str, Any] = {"durability": str(self.conn.durability or "")}

        def read(r: Any) -> Any:
            if isinstance(r, RedisCluster):
                return r.info("replication", target_nodes=r.get_node_from_key(queue_key))
            return r.info("replication")

        try:
            info = await self.conn.execute("reading the replication offset", read)
        except Exception as exc:  # noqa: BLE001 -- no evidence then: judged as the worker's loss
            found["replication_error"] = f"{type(exc).__name__}: {exc}"
        else:
            found.update(replication_of(info))
        return found

    async def preload(self, count: int, chunk: int = 200) -> None:
        """Enqueue ``count`` jobs at once (a standing backlog), in transactions of ``chunk``."""
        while count > 0:
            ids = [self._next_id() for _ in range(min(chunk, count))]
            count -= len(ids)
            specs = []
            for job_id in ids:
                queue = self.rng.choice(self.queues)
                self.history.record("producer", "enqueue", "invoke", job_id=job_id, queue=queue)
                specs.append(JobSpec(TASK, (job_id,), self._kwargs({}), queue, job_id))
            try:
                await self.producer.enqueue_many(specs)
            except Exception as exc:  # noqa: BLE001 -- an unknown outcome, recorded per job
                error = f"{type(exc).__name__}: {exc}"
                for job_id in ids:
                    self.history.record("producer", "enqueue", "info", job_id=job_id, error=error)
            else:
                for job_id in ids:
                    self.history.record("producer", "enqueue", "ok", job_id=job_id)

    async def run(self) -> None:
        """Enqueue at a steady pace (with a little seeded jitter) until :meth:`stop`."""
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            await self.enqueue()
            next_at += interval * (0.5 + self.rng.random())
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind during an outage: keep the pace from now on
                next_at = time.monotonic()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def close(self) -> None:
        await self.conn.close()
