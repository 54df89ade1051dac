"""Queue protocol.

The worker registry: who is alive, who owns a worker id, and recovery of the dead.

A worker is registered in ``steadfetch:workers`` with the set of queue keys it may hold jobs
from (``steadfetch:worker-queues:{id}``), so recovery can find every processing list of a dead
worker without scanning the keyspace. Its heartbeat key has a TTL; gone means dead.

A worker id is owned by one live process: the lease hash ``steadfetch:lease:{id}`` holds a random
token per process (plus hostname, pid, since, renewed_at), written with every heartbeat and with
the heartbeat's TTL. Ack and settle carry the token and do nothing when it no longer holds the
lease (fencing): a worker that was frozen or cut off past its TTL (a *zombie*: its jobs were
recovered and run elsewhere) cannot touch the processing list it lost, and its heartbeat does not
silently re-register it. It finds out (on its next heartbeat or settle), says so in one WARNING,
counts the jobs it ran that had been recovered elsewhere, and rejoins under a fresh token.

A second process started with a live worker's id (a *twin*) is refused: on the same host when the
holder's pid is alive, at once; elsewhere after waiting one TTL for the holder to renew its lease.
A restart after a crash takes over at once on the same host (the holder's pid is gone), else when
the crashed holder's lease expires (also when the holder had this process's own pid: a container
restarted in place looks exactly like a twin container with the same hostname).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from steadfetch.fetcher import cluster
from steadfetch.fetcher.adoption import take_one
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.errors import ConfigurationError
from steadfetch.fetcher.keys import Keys
from steadfetch.fetcher.scripts import RECOVER, WAKE_BOUND, LuaScript

log = logging.getLogger("fetcher.registry")

LEASE = LuaScript.load("lease")
UNREGISTER = LuaScript.load("unregister")
ORPHANS = LuaScript.load("orphans")
#: At most this many dead worker ids are named in the one recovery line.
NAMED_DEAD = 10
#: A lease last renewed longer ago than this share of its TTL may have expired (the renewal's
#: send time is the clock: the server's expiry is later still). Jobs in hand then wait for
#: :meth:`WorkerRegistration.confirm` before they start; a live worker's beats keep its lease far
#: younger, so only a frozen process or a long outage ever waits.
LEASE_DOUBT = 0.9


@dataclass
class Ownership:
    """What this process saw of ownership: the counters of issue 11 §5, for metrics and beats.

    ``recovered_jobs``/``dead_workers``: jobs this worker moved back from dead workers, and how
    many dead workers it removed. ``presumed_dead``: times this worker found it had been taken
    for dead (its registration or lease gone). ``late_settles``: jobs it finished (ack, retry,
    dead-letter) after they had been recovered elsewhere; the fence turned each settle into a
    no-op. ``presumed_dead_at``: unix time of the last such discovery (None: never).
    """

    recovered_jobs: int = 0
    dead_workers: int = 0
    presumed_dead: int = 0
    late_settles: int = 0
    presumed_dead_at: float | None = None

    def counters(self) -> dict[str, int]:
        return {
            "recovered_jobs": self.recovered_jobs,
            "dead_workers_recovered": self.dead_workers,
            "presumed_dead": self.presumed_dead,
            "late_settles": self.late_settles,
        }


def holder_text(fields: dict[str, str]) -> str:
    """``host web-1 pid 4242 since 2026-11-29T21:00:00Z`` for a lease hash."""
    since = fields.get("since")
    when = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(since)))
        if since
        else "an unknown time"
    )
    return f"host {fields.get('hostname', '?')} pid {fields.get('pid', '?')} since {when}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(reply: Sequence[Any]) -> dict[str, str]:
    items = [_text(v) for v in reply]
    return dict(zip(items[::2], items[1::2], strict=False))


class WorkerRegistration:
    """One worker's entry in the registry and its lease (used by :class:`fetcher.Fetcher`).

    ``token`` is None until :meth:`register` (an unregistered fetcher settles unfenced).
    ``in_flight`` is the fetcher's count of payloads handed out and not settled, by (queue key,
    raw): when this worker finds it was presumed dead, those no longer in its processing lists
    were recovered elsewhere and go to ``stale``, so that their late settles touch nothing.
    """

    def __init__(
        self,
        conn: RedisConnection,
        keys: Keys,
        worker_id: str,
        queue_keys: Sequence[str],
        in_flight: Counter[tuple[str, bytes]] | None = None,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.worker_id = worker_id
        self.queue_keys = list(queue_keys)
        self.in_flight: Counter[tuple[str, bytes]] = (
            in_flight if in_flight is not None else Counter()
        )
        self.token: str | None = None
        self.ownership = Ownership()
        #: In-flight payloads recovered elsewhere while this worker was presumed dead.
        self.stale: Counter[tuple[str, bytes]] = Counter()
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._since = time.time()
        self._last_body = json.dumps({"worker_id": worker_id})
        self._ttl = 30.0
        self._rejoining = asyncio.Lock()
        #: When the last renewal that Redis accepted was sent (monotonic; 0: never).
        self._renewed_at = 0.0

    @property
    def lease_key(self) -> str:
        return self.keys.lease(self.worker_id)

    @property
    def fence(self) -> str:
        """The token settles are sent under ('' before :meth:`register`: unfenced)."""
        return self.token or ""

    async def _lease(self, token: str, mode: str, replaceable: str = "") -> list[Any]:
        keys = [
            self.lease_key,
            self.keys.heartbeat(self.worker_id),
            self.keys.workers,
            self.keys.worker_queues(self.worker_id),
        ]
        args: list[Any] = [
            token,
            _ms(self._ttl),
            self._last_body,
            self.hostname,
            self.pid,
            f"{time.time():.3f}" if mode == "beat" else f"{self._since:.3f}",
            replaceable,
            mode,
            self.worker_id,
            *self.queue_keys,
        ]
        what = "writing the heartbeat of" if mode == "beat" else "registering"
        sent = time.monotonic()
        reply: list[Any] = await self.conn.execute(
            f"{what} worker {self.worker_id}", LEASE.bind(keys, args)
        )
        status = _text(reply[0])
        if status in ("ok", "lapsed"):
            self._renewed_at = sent  # a cluster: the fence in each queue's slot, too
            await cluster.mirror_leases(
                self.conn, self.keys, self.worker_id, token, _ms(self._ttl), self.queue_keys
            )
        return [status, *reply[1:]]

    async def register(self, ttl: float, queues: Sequence[str]) -> None:
        """Claim this worker id with a fresh token and a first heartbeat that lives ``ttl`` s.

        Raises ConfigurationError when a live process holds the id (a twin). A holder that is
        gone (same host, its pid dead) is replaced at once; a holder elsewhere is given one TTL
        to renew its lease before this process takes the id over.
        """
        self._ttl = ttl
        self._last_body = json.dumps(
            {"worker_id": self.worker_id, "registered_at": time.time(), "queues": list(queues)}
        )
        await self._claim(secrets.token_hex(16))

    async def _claim(self, token: str) -> None:
        replaceable = ""
        waited_for: str | None = None
        deadline: float | None = None
        while True:
            status, *rest = await self._lease(token, "claim", replaceable)
            if status == "ok":
                self.token = token
                if waited_for is not None:
                    log.warning(
                        "worker id %s: the lease of %s expired without renewal; taking the id "
                        "over (its jobs are adopted)",
                        self.worker_id,
                        waited_for,
                    )
                return
            holder = _fields(rest)
            held_by = holder_text(holder)
            same_host = holder.get("hostname") == self.hostname
            pid = int(holder.get("pid") or 0)
            # Same host, another pid: we can see whether it lives. Our own pid (a container
            # restarted in place, or a twin container with the same hostname) tells nothing:
            # then, as for another host, the holder gets one TTL to prove it is alive.
            if same_host and pid != self.pid and not _pid_alive(pid):
                log.warning(
                    "worker id %s was held by %s, which is no longer running; taking it over "
                    "(its unfinished jobs are adopted)",
                    self.worker_id,
                    held_by,
                )
                replaceable = holder.get("token", "")
                continue
            if same_host and pid != self.pid:
                raise self._twin(held_by)
            renewed = holder.get("renewed_at")
            if deadline is None:
                left = await self.conn.execute(
                    f"reading the lease of worker {self.worker_id}",
                    lambda r: r.pttl(self.lease_key),
                )
                wait = max(0.0, int(left) / 1000.0) + 0.5
                deadline = time.monotonic() + wait
                first_renewal, waited_for = renewed, held_by
                log.warning(
                    "worker id %s is held by %s (not a process this host can see): waiting up "
                    "to %.1f s for its "
                    "lease to expire (a crashed holder's lease runs out; a live one renews it)",
                    self.worker_id,
                    held_by,
                    wait,
                )
            elif renewed != first_renewal or time.monotonic() > deadline:
                raise self._twin(held_by)
            await asyncio.sleep(min(0.5, self._ttl / 4))

    def _twin(self, held_by: str) -> ConfigurationError:
        return ConfigurationError(
            f"worker id {self.worker_id} is already held by a live process ({held_by}); "
            "two processes must not share a worker id: give each its own --worker-id "
            "(or leave it unset for a unique default)",
            endpoint=self.conn.endpoint,
            operation=f"registering worker {self.worker_id}",
        )

    async def heartbeat(self, payload: dict[str, Any], ttl: float) -> None:
        """Renew the lease and write the heartbeat; find out when this worker was presumed dead
        (then rejoin under a fresh token, see :meth:`lease_lost`)."""
        self._ttl = ttl
        self._last_body = json.dumps(payload, default=str)
        if self.token is None:  # never registered: join now
            await self._claim(secrets.token_hex(16))
            return
        await self._renew(self.token)

    def lease_in_doubt(self) -> bool:
        """Whether the lease may have expired since its last renewal (:data:`LEASE_DOUBT`): a
        process frozen past its TTL wakes up with jobs in hand that another worker may have
        recovered and run meanwhile."""
        age = time.monotonic() - self._renewed_at
        return self.token is not None and age > self._ttl * LEASE_DOUBT

    async def confirm(self) -> None:
        """Renew the lease now, unless a renewal went out since this was asked: finds out a
        presumed death (rejoin; the jobs recovered elsewhere become :attr:`stale`) before a job
        in hand starts. Several runners asking at once cost one renewal."""
        asked = time.monotonic()
        if self.token is not None:
            await self._renew(self.token, unless_renewed_since=asked)

    async def lease_lost(self, token: str) -> None:
        """A settle under ``token`` was refused by the fence: find out why, as the heartbeat
        does (:meth:`_renew`). Afterwards the caller settles again under :attr:`fence`: the
        jobs recovered elsewhere are then :attr:`stale` and touch nothing."""
        await self._renew(token)

    async def _renew(self, token: str, unless_renewed_since: float | None = None) -> None:
        """Renew the lease held by ``token`` (a beat). Its lease may have lapsed while nobody
        recovered this worker: taken back, same token, a WARNING. Or the worker was presumed
        dead (recovered): say so, mark in-flight jobs recovered elsewhere as stale, rejoin with
        a fresh token. Raises ConfigurationError when another process holds the id now.
        Serialized, and idempotent per token (the heartbeat and several fenced settles may all
        find out at once)."""
        async with self._rejoining:
            if self.token != token:
                return  # someone (the heartbeat or another settle) already rejoined
            if unless_renewed_since is not None and self._renewed_at >= unless_renewed_since:
                return  # renewed (or rejoined) while this caller waited for the lock
            status, *rest = await self._lease(token, "beat")
            if status == "ok":
                return
            if status == "lapsed":
                log.warning(
                    "worker %s: its heartbeat had expired (no heartbeat got through within the "
                    "TTL of %.1f s: a stalled loop or a slow link) but nobody had recovered its "
                    "jobs yet; lease renewed",
                    self.worker_id,
                    self._ttl,
                )
                return
            holder = _fields(rest)
            if holder.get("token"):
                raise ConfigurationError(
                    f"worker {self.worker_id} was presumed dead and its id is now held by "
                    f"another process ({holder_text(holder)}); this process stops without "
                    "touching that worker's jobs. Give each worker its own --worker-id.",
                    endpoint=self.conn.endpoint,
                    operation=f"writing the heartbeat of worker {self.worker_id}",
                )
            self._since = time.time()
            await self._claim(secrets.token_hex(16))
            recovered = await self._mark_stale()
            self.ownership.presumed_dead += 1
            self.ownership.presumed_dead_at = time.time()
            log.warning(
                "worker %s was presumed dead: its lease expired and its registration was gone "
                "(its jobs recovered by another worker after it was frozen, paused or cut off "
                "longer than the heartbeat TTL of %.1f s; or Redis lost its data). %d job(s) it "
                "holds were recovered elsewhere and may run twice; their late acks and retries "
                "are ignored. Rejoined with a fresh lease.",
                self.worker_id,
                self._ttl,
                recovered,
            )

    async def _mark_stale(self) -> int:
        """After rejoining: in-flight payloads absent from our processing lists were recovered
        elsewhere; remember them (a multiset: identical bytes re-fetched since stay ours)."""
        keys = [self.keys.processing(self.worker_id, q) for q in self.queue_keys]

        async def read(r: Redis) -> list[list[bytes]]:
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.lrange(key, 0, -1)
            return list(await pipe.execute())

        lists = await self.conn.execute(f"reading the processing lists of {self.worker_id}", read)
        present: Counter[tuple[str, bytes]] = Counter()
        for queue_key, items in zip(self.queue_keys, lists, strict=True):
            present.update((queue_key, raw) for raw in items)
        gone = self.in_flight - present - self.stale
        self.stale.update(gone)
        return sum(gone.values())

    def take_stale(self, held: tuple[str, bytes]) -> bool:
        """True (and counted as a late settle) when a settle of ``held`` must touch nothing."""
        if not take_one(self.stale, held):
            return False
        self.ownership.late_settles += 1
        return True

    def still_ours(self, held: tuple[str, bytes]) -> bool:
        """False for a payload recovered elsewhere while this worker was presumed dead: it is
        forgotten (no longer in flight, counted as a late settle) and must touch nothing."""
        if not self.take_stale(held):
            return True
        take_one(self.in_flight, held)
        return False

    async def holds_lease(self) -> bool:
        """True unless another process holds this worker id now."""
        held = await self.conn.execute(
            f"reading the lease of worker {self.worker_id}",
            lambda r: r.hget(self.lease_key, "token"),
        )
        return held is None or _text(held) == self.fence

    async def unregister(self) -> None:
        keys = [
            self.lease_key,
            self.keys.heartbeat(self.worker_id),
            self.keys.workers,
            self.keys.worker_queues(self.worker_id),
        ]
        left = await self.conn.execute(
            f"unregistering worker {self.worker_id}",
            UNREGISTER.bind(keys, [self.fence, self.worker_id]),
        )
        if not left:
            log.warning(
                "worker %s did not unregister: another process holds its id now", self.worker_id
            )

    async def recover_dead_workers(self, *, sweep: bool = False) -> int:
        moved, removed = await recover(self.conn, self.keys, caller=self.worker_id, sweep=sweep)
        self.ownership.recovered_jobs += moved
        self.ownership.dead_workers += removed
        return moved


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def split_processing_key(keys: Keys, key: str) -> tuple[str, str] | None:
    """``(worker id, queue key)`` named by a processing list's key, or None when the key does
    not end in a queue key. Only for lists no registered worker owns: the registry's
    worker-queues sets are the source of truth for the others."""
    rest = key.removeprefix(keys.processing_prefix)
    if keys.cluster:  # W:{queue key}
        worker_id, found, tagged = rest.rpartition(":{")
        if found and worker_id and tagged.endswith("}"):
            return worker_id, tagged[:-1]
        return None
    markers = (f":{keys.prefix}:queue:", f":{keys.resque_prefix}:queue:")
    if sum(rest.count(marker) for marker in markers) != 1:
        # None, or several: a queue name or worker id holding ':steadfetch:queue:' itself
        # (queue 'x:steadfetch:queue:y') splits several ways; guessing gave a live worker's
        # running job to another queue (it ran twice at once). Such a list is left alone.
        return None
    for marker in markers:
        worker_id, found, name = rest.partition(marker)
        if found and worker_id:
            return worker_id, marker[1:] + name
    return None


def _named(pairs: list[tuple[str, int]]) -> str:
    pairs = sorted(pairs)
    named = ", ".join(f"{wid} ({n} job{'s' if n != 1 else ''})" for wid, n in pairs[:NAMED_DEAD])
    more = f" and {len(pairs) - NAMED_DEAD} more" if len(pairs) > NAMED_DEAD else ""
    return named + more


async def recover(
    conn: RedisConnection, keys: Keys, *, caller: str | None = None, sweep: bool = False
) -> tuple[int, int]:
    """Move the jobs of every registered worker whose heartbeat is gone back to the head of
    their queues, in order (one atomic script: concurrent recoverers never duplicate a job), and
    log ONE line naming the dead workers and the jobs moved. ``caller``, the recovering worker
    itself, is never taken for dead. With ``sweep``, also give back processing lists that no
    registered, live worker owns (:func:`sweep_orphans`), named in the same line.
    Returns (jobs moved, dead workers removed).

    On a Redis Cluster the same, split so that each script call touches one slot
    (:func:`fetcher.cluster.recover`; not one atomic script, see docs/CONTRACTS.md)."""
    if keys.cluster:
        moved, pairs, broken = await cluster.recover(conn, keys, caller=caller)
        removed = len(pairs)
    else:
        moved, removed, pairs, broken = await _recover_in_one_script(conn, keys, caller)
    if broken:
        warn_left_alone(broken, "recovering the jobs of dead workers")
    parts = []
    if removed:
        parts.append(
            f"recovered {moved} job(s) of {removed} dead worker(s) (heartbeat expired): "
            + _named(pairs)
        )
    if sweep:
        orphans = await sweep_orphans(conn, keys, caller=caller)
        if orphans:
            swept = sum(n for _wid, n in orphans)
            moved += swept
            parts.append(
                f"recovered {swept} job(s) from processing lists of unregistered worker(s) "
                f"(presumed dead before they fetched them): {_named(orphans)}"
            )
    if parts:
        log.warning("%s%s", "; ".join(parts), f"; by worker {caller}" if caller else "")
    return moved, removed


def warn_left_alone(broken: list[tuple[str, str]], while_: str) -> None:
    """One WARNING naming the keys (with their type) that recovery or the orphan sweep left
    alone because they hold another type than steadfetch writes there: their jobs, if any,
    cannot be given back until someone looks (one foreign key must not stop every worker)."""
    named = ", ".join(f"{key} ({kind})" for key, kind in broken)
    log.warning(
        "left alone while %s: %s: not the type steadfetch keeps there (a set of queue keys, "
        "a processing list), so any jobs in them are not recovered; inspect or delete them",
        while_,
        named,
    )


async def _recover_in_one_script(
    conn: RedisConnection, keys: Keys, caller: str | None
) -> tuple[int, int, list[tuple[str, int]], list[tuple[str, str]]]:
    """recover.lua: (jobs moved, workers removed, [(dead worker id, jobs moved), ...],
    [(key left alone, its type), ...])."""
    args: list[Any] = [
        keys.heartbeat_prefix,
        keys.worker_queues_prefix,
        keys.processing_prefix,
        keys.wake(""),
        WAKE_BOUND,
        caller or "",
        keys.lease_prefix,
        time.time(),
    ]
    reply = await conn.execute(
        "recovering the jobs of dead workers", RECOVER.bind([keys.workers, keys.dead], args)
    )
    dead, left = reply[2], reply[3]
    pairs = [(_text(wid), int(n)) for wid, n in zip(dead[::2], dead[1::2], strict=True)]
    broken = [(_text(k), f"a {_text(t)}") for k, t in zip(left[::2], left[1::2], strict=True)]
    return int(reply[0]), int(reply[1]), pairs, broken


async def sweep_orphans(
    conn: RedisConnection, keys: Keys, *, caller: str | None = None
) -> list[tuple[str, int]]:
    """Give back processing lists whose worker is neither registered nor alive (no heartbeat,
    no lease): what a zombie fetched after it was recovered, when it died before rejoining.
    One SCAN of the keyspace, so the worker runs it at start and every few recovery passes.
    Returns ``[(worker id, jobs moved), ...]`` (lists that moved nothing are left out)."""

    async def scan(r: Redis) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = []
        registered = {_text(m) for m in await r.smembers(keys.workers)}
        async for raw in r.scan_iter(match=f"{keys.processing_prefix}*", count=1000):
            key = _text(raw)
            split = split_processing_key(keys, key)
            # Registered workers are recovery's (orphans.lua re-checks the rest atomically).
            if split is not None and split[0] != caller and split[0] not in registered:
                found.append((key, *split))
        return found

    candidates = await conn.execute("looking for orphaned processing lists", scan)
    moved: dict[str, int] = {}
    for key, worker_id, queue_key in candidates:
        if keys.cluster:  # the registry checks in its slot, then the list's move in the queue's
            n = await cluster.give_back_orphan(conn, keys, worker_id, queue_key)
            if n < 0:
                warn_left_alone([(key, cluster.NOT_A_LIST)], "sweeping orphans")
            elif n:
                moved[worker_id] = moved.get(worker_id, 0) + n
            continue
        script_keys = [
            key,
            queue_key,
            keys.heartbeat(worker_id),
            keys.lease(worker_id),
            keys.workers,
            keys.wake(queue_key),
            keys.dead,
        ]
        n = int(
            await conn.execute(
                f"giving back the orphaned processing list {key}",
                ORPHANS.bind(script_keys, [worker_id, WAKE_BOUND, time.time()]),
            )
        )
        if n < 0:
            warn_left_alone([(key, cluster.NOT_A_LIST)], "sweeping orphans")
        elif n:
            moved[worker_id] = moved.get(worker_id, 0) + n
    return list(moved.items())


async def recover_dead_workers(
    conn: RedisConnection, keys: Keys, *, caller: str | None = None
) -> int:
    """:func:`recover`, returning the number of jobs moved."""
    moved, _removed = await recover(conn, keys, caller=caller)
    return moved
