"""Queue protocol. Where everything lives in Redis: one object that turns names into keys.

Queue *names* are what users write (``high``, ``default``; ``resque:stats`` for the Resque list
``resque:queue:stats``); queue *keys* are what Redis and the Lua scripts see. Job payloads and
dead-letter entries store keys; the Python API speaks names.

On a Redis Cluster (``Keys(cluster=True)``, chosen from a ``redis+cluster://`` URL) every key a
script call touches must live in one hash slot. Queue keys keep their names (so Resque producers
and existing steadfetch producers still push where they always did), and every other key of a
queue carries the queue key as its hash tag, ``{steadfetch:queue:high}``: a key without braces
hashes as a whole, so ``...:{Q}`` lands in the slot of ``Q`` itself. Hence per-queue variants of
what is global on one Redis (scheduled zset, dead-letter list, idempotency reservations, a copy
of the worker's lease for fencing), and the registry keys (worker set, heartbeats, leases,
worker-queue sets) share the tag ``{steadfetch}``. On one Redis nothing changes: same names as
before, so existing deployments and their data keep working.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from steadfetch.fetcher.errors import ConfigurationError

if TYPE_CHECKING:
    from steadfetch.fetcher.connection import RedisConnection

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
    """Key layout (see docs/CONTRACTS.md). ``prefix`` namespaces everything but Resque queues;
    ``cluster``: the hash-tagged layout of a Redis Cluster (module docstring)."""

    prefix: str = "steadfetch"
    resque_prefix: str = "resque"
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster:
            _no_braces("key prefix", self.prefix)
            _no_braces("Resque key prefix", self.resque_prefix)

    @property
    def _registry(self) -> str:
        """Prefix of the registry keys: ``{steadfetch}`` on a cluster (one slot for them all)."""
        return f"{{{self.prefix}}}" if self.cluster else self.prefix

    def tag(self, queue_key: str) -> str:
        """``queue_key`` as a hash tag on a cluster (``{steadfetch:queue:high}``), else as is."""
        if not self.cluster:
            return queue_key
        _no_braces("queue key", queue_key)
        return f"{{{queue_key}}}"

    def check_worker_id(self, worker_id: str) -> None:
        """On a cluster a worker id is part of hash-tagged keys: it must not hold braces."""
        if self.cluster:
            _no_braces("worker id", worker_id)

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
        return f"{self.prefix}:processing:{worker_id}:{self.tag(queue_key)}"

    @property
    def processing_prefix(self) -> str:
        return f"{self.prefix}:processing:"

    @property
    def workers(self) -> str:
        return f"{self._registry}:workers"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self._registry}:worker:{worker_id}"

    @property
    def heartbeat_prefix(self) -> str:
        return f"{self._registry}:worker:"

    def lease(self, worker_id: str) -> str:
        """Hash naming the one process that owns ``worker_id`` now (token, hostname, pid, since,
        renewed_at); same TTL as the heartbeat. Ack and settle are fenced by its token."""
        return f"{self._registry}:lease:{worker_id}"

    @property
    def lease_prefix(self) -> str:
        return f"{self._registry}:lease:"

    def worker_queues(self, worker_id: str) -> str:
        """Set of the queue keys a worker may hold jobs from (so recovery finds its lists)."""
        return f"{self._registry}:worker-queues:{worker_id}"

    @property
    def worker_queues_prefix(self) -> str:
        return f"{self._registry}:worker-queues:"

    @property
    def scheduled(self) -> str:
        """The one scheduled zset of a single Redis (on a cluster: :meth:`scheduled_of`)."""
        return f"{self.prefix}:scheduled"

    @property
    def dead(self) -> str:
        """The one dead-letter list of a single Redis (on a cluster: :meth:`dead_of`)."""
        return f"{self.prefix}:dead"

    def scheduled_of(self, queue_key: str) -> str:
        """Where jobs of ``queue_key`` wait for their time: :attr:`scheduled`, or on a cluster
        ``steadfetch:scheduled:{Q}`` in the queue's slot."""
        return f"{self.prefix}:scheduled:{self.tag(queue_key)}" if self.cluster else self.scheduled

    def dead_of(self, queue_key: str) -> str:
        """Where jobs of ``queue_key`` are dead-lettered: :attr:`dead`, or on a cluster
        ``steadfetch:dead:{Q}`` in the queue's slot."""
        return f"{self.prefix}:dead:{self.tag(queue_key)}" if self.cluster else self.dead

    def queue_lease(self, worker_id: str, queue_key: str) -> str:
        """The fence a settle checks: the worker's lease hash, or on a cluster its copy in the
        queue's slot (``steadfetch:lease:W:{Q}``, same token and TTL, written with each beat)."""
        if not self.cluster:
            return self.lease(worker_id)
        return f"{self.prefix}:lease:{worker_id}:{self.tag(queue_key)}"

    def unique(self, job_id: str, queue_key: str = "") -> str:
        """A job id's reservation (idempotent enqueue, :mod:`fetcher.unique`); on a cluster
        per queue, in its slot (an id is then unique within one queue only)."""
        if self.cluster:
            return f"{self.prefix}:unique:{self.tag(queue_key)}:{job_id}"
        return f"{self.prefix}:unique:{job_id}"

    def wake(self, queue_key: str) -> str:
        """Per-queue list of disposable wake-up tokens (producers push, idle fetchers BLPOP)."""
        return f"{self.prefix}:wake:{self.tag(queue_key)}"

    def queue_keys(self, names: Iterable[str]) -> list[str]:
        return [self.queue_key(n) for n in names]

    def queue_ref(self, worker_id: str, name: str) -> QueueRef:
        """The keys of queue ``name`` for worker ``worker_id``, as one record."""
        key = self.queue_key(name)
        return QueueRef(name, key, self.processing(worker_id, key), self.wake(key))


def keys_for(conn: RedisConnection, keys: Keys | None = None) -> Keys:
    """``keys`` (default: ``Keys()``) in the layout ``conn`` needs: the hash-tagged one for a
    ``redis+cluster://`` URL, whatever the caller passed."""
    keys = keys or Keys()
    cluster = conn.address.kind == "cluster"
    return keys if keys.cluster == cluster else replace(keys, cluster=cluster)


def _no_braces(what: str, text: str) -> None:
    if "{" in text or "}" in text:
        raise ConfigurationError(
            f"{what} {text!r} holds a brace: on a Redis Cluster steadfetch uses queue keys as "
            "hash tags ({...}), so queue names, worker ids and prefixes must not hold { or }",
            endpoint="",
            operation=f"naming the keys of {what} {text!r}",
        )
