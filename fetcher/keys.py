"""Queue protocol. Where everything lives in Redis: one object that turns names into keys.

Queue *names* are what users write (``high``, ``default``; ``resque:stats`` for the Resque list
``resque:queue:stats``); queue *keys* are what Redis and the Lua scripts see. Job payloads and
dead-letter entries store keys; the Python API speaks names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RESQUE_NAME_PREFIX = "resque:"


@dataclass(frozen=True, slots=True)
class QueueRef:
    """One queue as one worker sees it: every key that belongs to it, resolved once.

    ``name`` is what users write (``high``); ``key`` the list producers push to; ``processing``
    this worker's list of jobs taken from it and not yet settled; ``wake`` its wake-token list.
    """

    name: str
    key: str
    processing: str
    wake: str


@dataclass(frozen=True)
class Keys:
    """Key layout (see docs/CONTRACTS.md). ``prefix`` namespaces everything but Resque queues."""

    prefix: str = "steadfetch"
    resque_prefix: str = "resque"

    def queue_key(self, name: str) -> str:
        """``high`` -> ``steadfetch:queue:high``; ``resque:stats`` -> ``resque:queue:stats``."""
        if name.startswith(RESQUE_NAME_PREFIX):
            return f"{self.resque_prefix}:queue:{name.removeprefix(RESQUE_NAME_PREFIX)}"
        return f"{self.prefix}:queue:{name}"

    def queue_name(self, key: str) -> str:
        """The inverse of :meth:`queue_key` (an unknown key is returned as it is)."""
        resque = f"{self.resque_prefix}:queue:"
        if key.startswith(resque):
            return RESQUE_NAME_PREFIX + key.removeprefix(resque)
        return key.removeprefix(f"{self.prefix}:queue:")

    def is_resque(self, queue_key: str) -> bool:
        return queue_key.startswith(f"{self.resque_prefix}:queue:")

    @property
    def resque_queues(self) -> str:
        """The set Resque producers add queue names to (``SADD resque:queues NAME``)."""
        return f"{self.resque_prefix}:queues"

    def processing(self, worker_id: str, queue_key: str) -> str:
        return f"{self.prefix}:processing:{worker_id}:{queue_key}"

    @property
    def processing_prefix(self) -> str:
        return f"{self.prefix}:processing:"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def heartbeat_prefix(self) -> str:
        return f"{self.prefix}:worker:"

    def lease(self, worker_id: str) -> str:
        """Hash naming the one process that owns ``worker_id`` now (token, hostname, pid, since,
        renewed_at); same TTL as the heartbeat. Ack and settle are fenced by its token."""
        return f"{self.prefix}:lease:{worker_id}"

    @property
    def lease_prefix(self) -> str:
        return f"{self.prefix}:lease:"

    def worker_queues(self, worker_id: str) -> str:
        """Set of the queue keys a worker may hold jobs from (so recovery finds its lists)."""
        return f"{self.prefix}:worker-queues:{worker_id}"

    @property
    def worker_queues_prefix(self) -> str:
        return f"{self.prefix}:worker-queues:"

    @property
    def scheduled(self) -> str:
        return f"{self.prefix}:scheduled"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def unique(self, job_id: str) -> str:
        """A job id's reservation (idempotent enqueue, :mod:`fetcher.unique`)."""
        return f"{self.prefix}:unique:{job_id}"

    def wake(self, queue_key: str) -> str:
        """Per-queue list of disposable wake-up tokens (producers push, idle fetchers BLPOP)."""
        return f"{self.prefix}:wake:{queue_key}"

    def queue_keys(self, names: Iterable[str]) -> list[str]:
        return [self.queue_key(n) for n in names]

    def queue_ref(self, worker_id: str, name: str) -> QueueRef:
        """The keys of queue ``name`` for worker ``worker_id``, as one record."""
        key = self.queue_key(name)
        return QueueRef(name, key, self.processing(worker_id, key), self.wake(key))
