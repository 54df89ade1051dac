"""Sentinel failover under chaos (issue 11 §2): the faults, and telling the two kinds of loss apart.

Three faults act on a :class:`chaos.env.sentinel.SentinelStack`: ``SENTINEL FAILOVER`` (a live
primary demoted), SIGKILL of the primary, and a partition of the primary from the sentinels, the
replica and the clients (its proxy disabled). Each holds until the sentinels name a new primary
and the worker has logged the switch in its one line (``primary moved from A to B``), and then
records the evidence the checker needs: the promoted replica's ``master_replid2`` and
``second_repl_offset``, i.e. how much of the old primary's replication stream it had when it
was promoted.

Replication is asynchronous, so Redis may acknowledge an enqueue that the promoted replica never
received. The producer records, with every acknowledged enqueue, the primary's replication id and
offset read right after it (:class:`chaos.workload.producer.SteadyProducer`,
``track_replication``). :func:`split_lost` then splits the lost jobs: **lost by the failover**
(acknowledged under the old replication id at an offset beyond what the new primary had: Redis
dropped it) and **lost by the worker** (everything else: a bug).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis as redis_py

from steadfetch.chaos.env.cluster import ClusterNodeControl
from steadfetch.chaos.env.sentinel import SERVICE, SentinelStack
from steadfetch.chaos.history import Op, select
from steadfetch.chaos.nemesis import Fault, Target, blocking, wait_for

MOVED = r"primary moved from \S+ to \S+"
SWITCH_WITHIN = 25.0
#: A live old primary is demoted only once a sentinel's INFO round (every 10 s for a replica
#: entry) has seen it claim the master role for 8 s: 10-20 s, longer on a loaded machine (40 s
#: was once not enough with the suite on 4 pytest processes). This bounds the wait for Redis
#: Sentinel's own work, not anything the worker does.
DEMOTION_WITHIN = 60.0


def _stack(t: Target) -> SentinelStack:
    if not isinstance(t.stack, SentinelStack):
        raise TypeError("a failover fault needs a Sentinel stack (Scenario.sentinel=True)")
    return t.stack


@dataclass(frozen=True)
class Failover(Fault):
    """Base: hold until the sentinels name a new primary and the worker logged the switch."""

    ambiguous: bool = True
    outage: bool = False  # a clean SENTINEL FAILOVER may cost no outage line at all
    noisy: bool | None = True
    recovery_line: bool = False
    duration: float = 0.0
    rolls_back: bool = True  # the new primary may miss acks (and fetches) the old one took

    async def hold(self, t: Target) -> None:
        stack = _stack(t)
        since = max(op.time for op in t.history.ops() if op.f == "fault-start")
        old = ("127.0.0.1", stack.proxy_port)

        def moved() -> bool:
            now = stack.primary_address()
            return now is not None and now != old

        await wait_for(lambda: moved(), SWITCH_WITHIN, "the sentinels promoting the replica")
        await wait_for(lambda: t.logged(MOVED, since), SWITCH_WITHIN, "the worker's switch line")
        await blocking(lambda: record_evidence(t, stack))
        await asyncio.sleep(self.duration)
        if self.demoted_in_hold:
            # A live old primary keeps taking writes from clients that have no reason to ask
            # the sentinels again, until a sentinel's INFO round sees it and demotes it (up to
            # 10-20 s: split brain). The fault lasts until then; those writes are the failover's.
            await wait_settled(t)

    demoted_in_hold: bool = False

    async def heal(self, t: Target) -> str:
        """Heal the stack (restart a killed primary, end a partition), then wait until it has
        settled (:func:`settled`): a ``--durability replicas=1`` write needs an in-sync replica,
        and until then the old primary may still take writes as a stale master."""
        await blocking(t.stack.heal)
        await wait_settled(t)
        return "healed the stack; one primary, the other node its in-sync replica"


@dataclass(frozen=True)
class SentinelFailover(Failover):
    demoted_in_hold: bool = True

    async def apply(self, t: Target) -> str:
        stack = _stack(t)
        await blocking(lambda: replica_on_main_link(stack))
        await blocking(lambda: sentinel_failover(stack))
        return "SENTINEL FAILOVER mymaster"


@dataclass(frozen=True)
class KillPrimary(Failover):
    outage: bool = True
    main_link_first: bool = True

    async def apply(self, t: Target) -> str:
        if self.main_link_first:
            stack = _stack(t)
            await blocking(lambda: replica_on_main_link(stack))
        await blocking(t.stack.redis.kill)
        return "SIGKILLed the primary"


@dataclass(frozen=True)
class LaggingKill(KillPrimary):
    """The replica's link swallows what the primary sends it (a ``timeout`` toxic, timeout=0,
    on the replication proxy, downstream) for ``lag`` seconds while the primary acknowledges
    writes; then the primary is SIGKILLed and the replica, which never got them, is promoted.
    Without durability those jobs are lost by the failover, deterministically; with it, none of
    them was acknowledged (WAIT could not be confirmed) and the writes are redone on the new
    primary."""

    lag: float = 1.0
    main_link_first: bool = False  # the lag needs the replica on its own link

    async def apply(self, t: Target) -> str:
        link = _stack(t).replication
        if link is None:
            raise TypeError("this Sentinel stack has no replication proxy")
        await blocking(
            lambda: link.add_toxic("timeout", stream="downstream", name="lag", timeout=0)
        )
        await asyncio.sleep(self.lag)
        did = await super().apply(t)
        return f"replica link black-holed for {self.lag:.1f} s, then {did}"


@dataclass(frozen=True)
class PartitionPrimary(Failover):
    outage: bool = True

    async def apply(self, t: Target) -> str:
        stack = _stack(t)
        await blocking(lambda: replica_on_main_link(stack))
        await blocking(t.stack.proxy.disable)
        return "partitioned the primary (its proxy disabled: sentinels, replica, clients cut)"


def replica_on_main_link(stack: SentinelStack, within: float = 15.0) -> None:
    """Point the replica at the primary's proxy address (what the sentinels would soon force,
    aborting a failover meanwhile) and wait until it is in sync there."""
    replica = redis_py.Redis(port=stack.replica_port, socket_timeout=5.0)
    deadline = time.monotonic() + within
    try:
        info = replica.info("replication")
        if int(info.get("master_port", 0)) != stack.proxy_port:
            replica.replicaof("127.0.0.1", stack.proxy_port)
        while True:
            info = replica.info("replication")
            if int(info.get("master_port", 0)) == stack.proxy_port and (
                info.get("master_link_status") == "up"
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica was not in sync on the main link in {within} s")
            time.sleep(0.05)
    finally:
        replica.close()


def settled(stack: SentinelStack) -> bool:
    """One primary, the one the sentinels name, and the other node its replica, in sync (so a
    ``--durability replicas=1`` write can be confirmed again). Usually that is the old primary
    demoted. On a loaded machine the sentinels may instead fail back to it: the new primary
    missed their pings for down-after-milliseconds while the returning node resynced from it
    (seen in failover-lag-kill, local and docker). That is as settled, and waiting for the old
    primary's demotion then waits for ever."""
    primary = stack.primary_address()
    if primary is None:
        return False
    old_leads = primary == ("127.0.0.1", stack.proxy_port)
    info = _replication(stack, "replica" if old_leads else "old primary")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _replication(stack: SentinelStack, node: str) -> dict[str, Any]:
    """INFO replication of the ``old primary`` (read directly, not through its proxy) or of the
    ``replica``; empty when it does not answer."""
    client = (
        stack.admin(timeout=2.0)
        if node == "old primary"
        else redis_py.Redis(port=stack.replica_port, socket_timeout=2.0)
    )
    try:
        return dict(client.info("replication"))
    except (redis_py.RedisError, OSError):
        return {}
    finally:
        client.close()


async def wait_settled(t: Target) -> None:
    """Wait for :func:`settled`; a timeout says what both nodes and the sentinels saw (a run
    directory under pytest's rotating temp may be gone before anyone reads its logs). When the
    sentinels failed back meanwhile, that second failover's evidence is recorded too: it can
    lose what the first new primary acknowledged, and the failover-loss checker must see it."""
    stack = _stack(t)
    try:
        await wait_for(lambda: settled(stack), DEMOTION_WITHIN, "the stack settling after failover")
    except TimeoutError as exc:
        seen = await blocking(lambda: stack_state(stack))
        raise TimeoutError(f"{exc} ({seen})") from None
    recorded = [op for op in t.history.ops() if op.f == "failover" and op.type == "ok"]
    now = await blocking(stack.primary_address)
    if recorded and now is not None and f"{now[0]}:{now[1]}" != recorded[-1].value["new_primary"]:
        before = str(recorded[-1].value["new_primary"])
        await blocking(lambda: record_evidence(t, stack, old=before))


def stack_state(stack: SentinelStack) -> str:
    """One line: each node's replication state and each sentinel's view of the service."""

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    parts: list[str] = []
    for node in ("old primary", "replica"):
        info = _replication(stack, node)
        parts.append(
            f"{node}: role={info.get('role', 'unreadable')} "
            f"master={info.get('master_host', '-')}:{info.get('master_port', '-')} "
            f"link={info.get('master_link_status', '-')}"
        )
    for index in range(len(stack.sentinel_ports)):
        sentinel = stack.sentinel(index)
        try:
            master: Any = sentinel.sentinel_master(SERVICE)
            parts.append(
                f"sentinel {index}: {text(master.get('ip'))}:{text(master.get('port'))} "
                f"flags={text(master.get('flags'))} "
                f"replicas={text(master.get('num-slaves'))} "
                f"failover={text(master.get('failover-state', '-'))}"
            )
        except (redis_py.RedisError, OSError) as exc:
            parts.append(f"sentinel {index}: unreadable ({type(exc).__name__})")
        finally:
            sentinel.close()
    return "; ".join(parts)


def sentinel_failover(stack: SentinelStack, within: float = 20.0) -> None:
    """SENTINEL FAILOVER, asked again while no replica is deemed good yet (NOGOODSLAVE) or
    another failover is in progress (INPROG)."""
    client = stack.sentinel()
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                client.sentinel_failover(SERVICE)
                return
            except redis_py.ResponseError as exc:
                if time.monotonic() > deadline or not any(
                    code in str(exc) for code in ("NOGOODSLAVE", "INPROG")
                ):
                    raise
            time.sleep(0.2)
    finally:
        client.close()


def record_evidence(t: Target, stack: SentinelStack, old: str | None = None) -> None:
    """The new primary's view of the old replication stream (``failover`` op in the history);
    ``old``: the primary it replaced (default: the first one, by its proxy address)."""
    address = stack.primary_address()
    if address is None:
        t.history.record("nemesis", "failover", "info", error="no sentinel names a primary")
        return
    client = redis_py.Redis(host=address[0], port=address[1], socket_timeout=5.0)
    try:
        info = client.info("replication")
    except (redis_py.RedisError, OSError) as exc:
        t.history.record("nemesis", "failover", "info", error=f"{type(exc).__name__}: {exc}")
        return
    finally:
        client.close()
    t.history.record(
        "nemesis",
        "failover",
        "ok",
        old_primary=old or f"127.0.0.1:{stack.proxy_port}",
        new_primary=f"{address[0]}:{address[1]}",
        replid2=str(info.get("master_replid2", "")),
        second_repl_offset=int(info.get("second_repl_offset", -1)),
        new_replid=str(info.get("master_replid", "")),
    )


def replication_of(info: dict[str, Any]) -> dict[str, Any]:
    """What the producer records with an acknowledged enqueue (from INFO replication)."""
    return {"replid": str(info.get("master_replid", "")), "offset": int(info["master_repl_offset"])}


def _inferred(
    ack: Op,
    acks: Sequence[Op],
    beyond: Any,
    failovers: Sequence[Op],
) -> dict[str, Any]:
    """An acknowledged enqueue whose offset could not be read (the primary died right after):
    the failover's if an earlier acknowledged enqueue was already beyond what the new primary
    had, and none before it came from the new primary (the producer asks the sentinels again
    only after an error, so it switches once). Offsets only grow on one primary."""
    new_ids = {str(f.value.get("new_replid", "")) for f in failovers}
    earlier = [a for a in acks if a.time <= ack.time and a is not ack]
    if any(str(a.value.get("replid", "")) in new_ids for a in earlier):
        return {}
    witness = next((a for a in reversed(earlier) if beyond(a.value) is not None), None)
    if witness is None:
        return {}
    return {
        "acked_at_offset": None,
        "inferred_from": str(witness.value["job_id"]),
        "witness_offset": witness.value.get("offset"),
        "why": "its offset could not be read (the primary died); an earlier ack was already "
        "beyond the new primary's offset",
    }


@dataclass(frozen=True)
class LostSplit:
    by_failover: list[str]
    by_worker: list[str]
    evidence: dict[str, Any]


def split_lost(history: Sequence[Op], lost: Iterable[str]) -> LostSplit:
    """Split ``lost`` job ids: acknowledged by the old primary beyond the new primary's
    ``second_repl_offset`` (under the replication id it took over as ``replid2``) → by the
    failover; otherwise (or with no evidence at all) → by the worker."""
    failovers = list(select(history, "failover", "ok"))
    acks = list(select(history, "enqueue", "ok"))
    acked = {str(op.value["job_id"]): op for op in acks}

    def beyond(value: dict[str, Any]) -> dict[str, Any] | None:
        for f in failovers:
            had = int(f.value.get("second_repl_offset", -1))
            if (
                value.get("replid") == f.value.get("replid2")
                and int(value.get("offset", -1)) > had >= 0
            ):
                return f.value
        return None

    by_failover: list[str] = []
    by_worker: list[str] = []
    examples: dict[str, Any] = {}
    for job in sorted(lost):
        ack = acked.get(job)
        value = ack.value if ack is not None else {}
        failover = beyond(value)
        if failover is not None:
            evidence: dict[str, Any] = {
                "acked_at_offset": value.get("offset"),
                "new_primary_had_up_to": failover["second_repl_offset"],
            }
        elif ack is not None and "offset" not in value:
            evidence = _inferred(ack, acks, beyond, failovers)
        else:
            evidence = {}
        if evidence:
            by_failover.append(job)
            if len(examples) < 5:
                examples[job] = evidence
        else:
            by_worker.append(job)
    evidence = {
        "failovers": [
            {k: f.value.get(k) for k in ("old_primary", "new_primary", "second_repl_offset")}
            for f in failovers
        ],
        "examples": examples,
    }
    return LostSplit(by_failover, by_worker, evidence)


@dataclass(frozen=True)
class KillClusterPrimary(Fault):
    """Redis Cluster (issue 11 §4): SIGKILL the primary serving the chaos queue's slot; its
    replica takes over (``cluster-node-timeout`` 1 s). Held until the cluster names the replica
    primary of the slot and the worker logged its switch line, then the promoted replica's view
    of the old stream is recorded as for Sentinel (its ``master_replid2`` and
    ``second_repl_offset``), so :func:`split_lost` tells the failover's losses from the
    worker's. The heal restarts the killed node, which rejoins as a replica."""

    ambiguous: bool = True
    outage: bool = True
    noisy: bool | None = True
    recovery_line: bool = False
    duration: float = 0.0
    rolls_back: bool = True

    async def apply(self, t: Target) -> str:
        control = _cluster_control(t)
        victim = control.cluster.primary_of(control.key)
        await blocking(lambda: control.cluster.wait_ok())
        await blocking(victim.kill)
        t.history.record("nemesis", "cluster-kill", "info", host=victim.host, port=victim.port)
        return f"SIGKILLed the primary of the chaos queue's slot ({victim.host}:{victim.port})"

    async def hold(self, t: Target) -> None:
        control = _cluster_control(t)
        since = max(op.time for op in t.history.ops() if op.f == "fault-start")

        def promoted() -> bool:
            try:
                return bool(control.cluster.primary_of(control.key).running)
            except (LookupError, RuntimeError):
                return False

        await wait_for(promoted, SWITCH_WITHIN, "the cluster promoting the replica")
        await wait_for(lambda: t.logged(MOVED, since), SWITCH_WITHIN, "the worker's switch line")
        await blocking(lambda: _cluster_evidence(t, control))

    async def heal(self, t: Target) -> str:
        await blocking(t.stack.heal)
        return "restarted the killed node; it rejoined as a replica; the cluster is ok"


def _cluster_control(t: Target) -> ClusterNodeControl:
    if not isinstance(t.stack.redis, ClusterNodeControl):
        raise TypeError("a cluster fault needs a cluster stack (Scenario.cluster=True)")
    return t.stack.redis


def _cluster_evidence(t: Target, control: ClusterNodeControl) -> None:
    """The promoted replica's view of the old replication stream (``failover`` op)."""
    node = control.cluster.primary_of(control.key)
    info = control.cluster.replication(node)
    t.history.record(
        "nemesis",
        "failover",
        "ok",
        new_primary=f"{node.host}:{node.port}",
        replid2=info.get("master_replid2", ""),
        second_repl_offset=int(info.get("second_repl_offset", -1)),
        new_replid=info.get("master_replid", ""),
    )
