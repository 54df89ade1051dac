"""Connection layer. RedisConnection: the single owner of the redis-py clients and pools.

Nobody else creates Redis clients: the fetcher, producers, the admin view, the worker and the
dashboard all call :meth:`RedisConnection.execute`, which runs one operation under the one retry
policy, logs every failed attempt in full and tracks the outage state.

Every socket has a connect timeout, a read timeout and TCP keepalive; redis-py's built-in
retries are off, so the retry policy here is the only one. A blocking command runs on a pool
whose read timeout is its block timeout plus a margin, so a half-open connection surfaces as a
timeout within a bounded time instead of hanging the fetch loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    MovedError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from tenacity import RetryCallState

from steadfetch.fetcher.cancellation import CancelGuard, interruptible
from steadfetch.fetcher.durability import Durability
from steadfetch.fetcher.errors import RedisUnavailable
from steadfetch.fetcher.failures import (
    describe,
    fatal_error,
    is_closed_by_peer,
    is_retryable,
    needs_new_master,
)
from steadfetch.fetcher.retry import RetryPolicy
from steadfetch.fetcher.state import (
    ConnectionState,
    ConnectionStats,
    Listener,
    OutageTracker,
)
from steadfetch.fetcher.url import RedisAddress, parse_redis_url

T = TypeVar("T")
log = logging.getLogger("fetcher.connection")

#: Client-side read timeout of a blocking call = block timeout + max(MIN, FRACTION * block).
BLOCK_MARGIN_MIN = 1.0
BLOCK_MARGIN_FRACTION = 0.25


def blocking_read_timeout(block_timeout: float) -> float:
    """The read timeout for a command that blocks server-side for ``block_timeout`` seconds."""
    return block_timeout + max(BLOCK_MARGIN_MIN, BLOCK_MARGIN_FRACTION * block_timeout)


#: A connection the server closed while idle is replaced quietly at most once per this many
#: seconds per client; a second closed connection sooner is an outage (a CLIENT KILL storm).
QUIET_RECONNECT_INTERVAL = 0.5


@dataclass
class _CallRecord:
    """What one ``execute`` call has seen so far (for its log lines and its final error)."""

    attempts: int = 0
    last_error: str = ""

    @property
    def key(self) -> int:
        """This call's key in the outage tracker (unique while the call lives)."""
        return id(self)


def _confirmed(
    fn: Callable[[Redis], Awaitable[T]], durability: Durability, endpoint: str, operation: str
) -> Callable[[Redis], Awaitable[T]]:
    """``fn`` then ``durability.confirm`` on the same pooled connection (WAIT counts the writes
    of its own connection only). On a cluster: :func:`_confirmed_on_cluster`."""

    stale = [False]  # cluster: the slot map must be re-read before the next attempt

    async def run(client: Redis) -> T:
        if isinstance(client, RedisCluster):
            if stale[0]:
                await client.nodes_manager.initialize()
                stale[0] = False
            try:
                return await _confirmed_on_cluster(client, fn, durability, endpoint, operation)
            except _STALE_SLOT_MAP:
                stale[0] = True  # a moved slot, a dead node: redis-py re-reads only for itself
                raise
        async with client.client() as one:
            result = await fn(one)
            await durability.confirm(one, endpoint=endpoint, operation=operation)
        return result

    return run


#: Failures of a durable write on a cluster after which its slot map is re-read.
_STALE_SLOT_MAP = (
    TryAgainError,  # MOVED/ASK, turned into an outage by _confirmed_on_cluster
    SlotNotCoveredError,
    rx.ClusterDownError,
    rx.ConnectionError,
    rx.TimeoutError,
)


class _ScriptCall:
    """Stands in for the client while a durable write's ``fn`` runs on a cluster: records the
    one script call it makes (``LuaScript`` sends EVAL to a client it has not used before)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def eval(self, *args: Any) -> _ScriptCall:
        self.calls.append(args)
        return self

    def __getattr__(self, name: str) -> Any:
        raise TypeError(f"a durable write on a cluster must be one script call, not {name}")


async def _confirmed_on_cluster(
    client: RedisCluster,
    fn: Callable[[Redis], Awaitable[T]],
    durability: Durability,
    endpoint: str,
    operation: str,
) -> T:
    """A durable write on a cluster: its one script call and the WAIT/WAITAOF as a pipeline to
    the primary that owns the script's slot. redis-py sends one node's commands of a pipeline
    on one connection, in order, so the WAIT counts that write (redirections off: a command
    sent on its own after a MOVED would let the WAIT count nothing and confirm at once).

    Every durable write is one script call in one slot (enqueue per slot, ack per slot, a
    settle); ``fn`` doing anything else is a bug, and fails loudly. A MOVED/ASK reply (the slot
    moved: a failover) is retried as TRYAGAIN, an outage; after it, or after a connection
    failure (a dead primary), :func:`_confirmed` re-reads the slot map before the next attempt
    (redis-py does that only for the commands it sends itself)."""
    recorder = _ScriptCall()
    returned: Any = await fn(cast(Redis, recorder))
    if returned is not recorder or len(recorder.calls) != 1:
        raise TypeError(f"a durable write on a cluster must be one script call ({operation})")
    source, numkeys, *rest = recorder.calls[0]
    if not int(numkeys):
        raise TypeError(f"a durable write on a cluster must name its keys ({operation})")
    await client.initialize()  # the slot map, before the first call has read it
    node = client.get_node_from_key(rest[0])
    if node is None:  # classified as an outage: the cluster is changing
        raise SlotNotCoveredError(f"no primary serves the slot of {rest[0]} now")
    pipe = client.pipeline()
    pipe.execute_command("EVAL", source, numkeys, *rest, target_nodes=node)
    pipe.execute_command(*durability.command(), target_nodes=node)
    written, confirmed = await pipe.execute(raise_on_error=False, allow_redirections=False)
    if isinstance(written, MovedError | AskError):
        raise TryAgainError(
            f"the slot of {rest[0]} moved away from {node.name} ({written}); the write is "
            "retried on its primary now"
        ) from written
    if isinstance(written, BaseException):
        raise written
    durability.check(confirmed, endpoint=f"{endpoint} ({node.name})", operation=operation)
    return cast(T, written)


class RedisConnection:
    """One Redis endpoint (plain, TLS, unix socket or Sentinel service) and its clients.

    >>> conn = RedisConnection.from_url("redis://127.0.0.1:6379/0")
    >>> await conn.execute("reading queue depth", lambda r: r.llen("steadfetch:queue:default"))

    ``read_timeout=0`` disables the client read timeout entirely: deliberately unsafe (a half-open
    socket can then hang a call forever), kept for the chaos suite's proof that its checker
    catches lock-ups. A warning is logged.
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        durability: Durability | None = None,
    ) -> None:
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be > 0")
        if read_timeout < 0:
            raise ValueError("read_timeout must be >= 0 (0 means none, which is unsafe)")
        self.address = address
        self.connect_timeout = connect_timeout
        self.read_timeout: float | None = read_timeout or None
        self.retry = retry or RetryPolicy()
        self.name = name
        self.durability = durability
        self._tracker = OutageTracker(address.endpoint)
        self._clients: dict[float | None, Redis] = {}
        # When each client (by id) last replaced a server-closed idle connection quietly.
        self._quiet_at: dict[int, float] = {}
        self._sentinel: Sentinel | None = None
        self._primary: tuple[str, int] | None = None  # Sentinel: the primary last resolved
        self._cluster_primaries: frozenset[str] | None = None  # Cluster: the primaries last seen
        #: Failovers this owner followed (Sentinel: the primary moved; Cluster: the set of
        #: primaries changed). A reader compares it with what it saw last.
        self.failovers = 0
        if self.read_timeout is None:
            log.warning(
                "Redis %s: read timeout disabled (read_timeout=0); a half-open connection can "
                "hang a call forever. This is unsafe and meant only for chaos proofs.",
                address.endpoint,
            )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        durability: Durability | None = None,
    ) -> RedisConnection:
        """Parse ``url`` (raises ConfigurationError saying what to fix) and build the owner.

        No I/O happens here; the first :meth:`execute` connects.
        """
        return cls(
            parse_redis_url(url),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
            name=name,
            durability=durability,
        )

    def __repr__(self) -> str:
        return f"<RedisConnection {self.endpoint} {self.state.value}>"

    @property
    def endpoint(self) -> str:
        """``host:port/db``, ``unix:/path/db`` or ``sentinel service@hosts/db``; no password."""
        return self.address.endpoint

    @property
    def primary(self) -> str | None:
        """``host:port`` (or ``unix:/path``) of the primary calls go to now: for Sentinel, the one
        last resolved through the sentinels (None before the first call), so a failover shows in
        heartbeats, ``/metrics``, ``status`` and ``top`` beside :attr:`failovers`."""
        if self.address.kind == "sentinel":
            return None if self._primary is None else f"{self._primary[0]}:{self._primary[1]}"
        if self.address.kind == "cluster":
            seen = self._cluster_primaries
            return None if seen is None else ",".join(sorted(seen))
        if self.address.kind == "unix":
            return f"unix:{self.address.path}"
        return f"{self.address.host}:{self.address.port}"

    @property
    def state(self) -> ConnectionState:
        return self._tracker.state

    @property
    def stats(self) -> ConnectionStats:
        return self._tracker.stats

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Deliver ConnectionLost/ConnectionRestored to ``listener`` synchronously."""
        return self._tracker.subscribe(listener)

    async def execute(
        self,
        operation: str,
        fn: Callable[[Redis], Awaitable[T]],
        *,
        deadline: float | None = None,
        block_timeout: float | None = None,
        write: bool = False,
    ) -> T:
        """Run ``fn(client)`` under the retry policy; ``operation`` names it in log lines
        (``"fetching from queues [high, default]"``).

        ``write``: ``fn`` writes what must survive (enqueue, settle): with a :attr:`durability`,
        it runs on one connection followed by ``WAIT``/``WAITAOF`` there, and an unconfirmed
        write is retried as the classification says (:mod:`fetcher.durability`).

        Retries connection-class failures (forever, or until ``deadline`` seconds have passed:
        then RedisUnavailable). Other Redis errors raise ConfigurationError at once. ``fn`` may
        run more than once, so it must be safe to repeat. Give ``block_timeout`` when ``fn``
        blocks server-side, so the read timeout is stretched to cover it.

        A task cancelled during the call gets CancelledError out of here, always, even when
        redis-py swallowed it (see :mod:`fetcher.cancellation`); the connections the call may
        have left with an unread reply are closed, never reused.
        """
        if write and self.durability is not None:
            fn = _confirmed(fn, self.durability, self.endpoint, operation)
        guard = CancelGuard()
        try:
            result = await self._execute(operation, fn, deadline, block_timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if guard.cancelled:  # a cancel swallowed below turned into some other failure
                raise guard.lost_cancel() from exc
            raise
        if guard.cancelled:
            raise guard.lost_cancel()
        return result

    async def _execute(
        self,
        operation: str,
        fn: Callable[[Redis], Awaitable[T]],
        deadline: float | None,
        block_timeout: float | None,
    ) -> T:
        if self.state is ConnectionState.CLOSED:
            raise RedisUnavailable(
                f"Redis {self.endpoint}: connection owner is closed",
                endpoint=self.endpoint,
                operation=operation,
            )
        call = _CallRecord()
        try:
            result = await self._retrying(operation, fn, deadline, block_timeout, call)
        except BaseException:
            self._tracker.ended(call.key, ok=False)
            raise
        self._tracker.ended(call.key, ok=True)
        return result

    async def _retrying(
        self,
        operation: str,
        fn: Callable[[Redis], Awaitable[T]],
        deadline: float | None,
        block_timeout: float | None,
        call: _CallRecord,
    ) -> T:
        # The first attempt runs without tenacity: a success returns here; a failure is replayed
        # as attempt 1 of the retry loop below, which then behaves exactly as if it had run it.
        # Earns its place (issue 13; measured 2026-11-29, CPU time): an AsyncRetrying loop around
        # an immediate success costs 50-57 us a call; a fetch and an ack per batch of ~100 jobs
        # make that ~1 us of the ~25 us of worker CPU a no-op job costs at concurrency 50.
        started = time.monotonic()
        try:
            return await self._first_attempt(operation, fn, block_timeout, call)
        except Exception as exc:  # noqa: BLE001 (not swallowed: replayed in the loop below)
            first_failure: Exception | None = exc

        def before_sleep(state: RetryCallState) -> None:
            line = self._tracker.retrying(call.key, state.upcoming_sleep)
            stats = self._tracker.stats
            extra = {
                "connection_event": "outage",
                "endpoint": self.endpoint,
                "operation": operation,
                "retry_attempt": stats.retry_attempt,
                "retry_next_at": stats.retry_next_at,
            }
            log.warning("%s", line, extra=extra)

        retrying = self.retry.retrying(is_retryable, before_sleep, deadline, started=started)
        try:
            async for attempt in retrying:
                with attempt:
                    if first_failure is not None:
                        failure, first_failure = first_failure, None
                        raise failure
                    result = await self._attempt(operation, fn, block_timeout, call)
        except Exception as exc:
            if is_retryable(exc):
                line = (
                    f"Redis {self.endpoint} unreachable while {operation}: "
                    f"{call.last_error or describe(exc)} (gave up after {call.attempts} attempt(s))"
                )
                self._tracker.gave_up(line)
                raise RedisUnavailable(line, endpoint=self.endpoint, operation=operation) from exc
            if isinstance(exc, RedisError | RedisClusterException):
                raise fatal_error(
                    exc, self.endpoint, operation, has_password=self.address.password is not None
                ) from exc
            raise
        return result

    async def _first_attempt(
        self,
        operation: str,
        fn: Callable[[Redis], Awaitable[T]],
        block_timeout: float | None,
        call: _CallRecord,
    ) -> T:
        """Attempt 1, and once more at once, quietly, when the server had closed the pooled
        connection while it sat idle (``timeout`` in redis.conf): that is no outage.

        Quiet only when no outage is in progress and no other connection of this client was
        replaced within :data:`QUIET_RECONNECT_INTERVAL`; the pool's other idle connections,
        likely closed too, are dropped with it. A connection that fails again is an outage.
        """
        client = self._client(block_timeout)
        try:
            return await self._attempt(operation, fn, block_timeout, call, quiet=True)
        except Exception as exc:
            now = time.monotonic()
            last = self._quiet_at.get(id(client))
            recent = last is not None and now - last < QUIET_RECONNECT_INTERVAL
            if recent or self._tracker.in_outage or not is_closed_by_peer(exc):
                self._record_failure(operation, exc, call)  # an ordinary attempt 1 after all
                raise
            self._quiet_at[id(client)] = now
            cause = describe(exc)
            log.debug("Redis %s closed an idle connection (%s); replacing it", self.endpoint, cause)
            await self._discard_idle(client)
            self._tracker.replaced_quietly()
        return await self._attempt(operation, fn, block_timeout, call)

    async def _attempt(
        self,
        operation: str,
        fn: Callable[[Redis], Awaitable[T]],
        block_timeout: float | None,
        call: _CallRecord,
        *,
        quiet: bool = False,
    ) -> T:
        """One attempt of ``execute``: a retryable failure is recorded before it propagates
        (``quiet``: left to the caller, which may not count it as a failure at all).

        A cancel during ``fn`` (raised, or swallowed by redis-py and seen only in the task's
        cancel count) ends the attempt in CancelledError. A cancel redis-py saw (raised through
        it) closed the one connection it interrupted (redis-py closes a connection on any
        BaseException while sending or reading, the fix of redis-py#2624/#2665): the pool's
        other idle connections are clean and kept, so the last ack flush after the drain's
        cancel does not reconnect (on a 300 ms link the handshake cost 1.2 s more:
        tests/fetcher/test_cancel_keeps_connections.py). After a cancel redis-py did not see,
        the idle connections are closed: the one ``fn`` used may hold an unread reply, which
        the next caller would otherwise read as its own.
        """
        client = self._client(block_timeout)
        guard = CancelGuard()
        try:
            # A blocking call runs where a cancel cannot be lost (it would block till the end).
            result = await (fn(client) if block_timeout is None else interruptible(fn(client)))
        except asyncio.CancelledError:
            self._prefer_live(client)
            raise
        except Exception as raised:
            exc = closed_under_the_call(client, raised)
            if guard.cancelled:
                await self._discard_idle(client)
                raise guard.lost_cancel() from exc
            if needs_new_master(exc):  # Sentinel: re-resolve on reconnect
                await self._discard_idle(client)
            if not quiet:
                self._record_failure(operation, exc, call)
            if exc is raised:
                raise
            raise exc from raised
        if guard.cancelled:
            await self._discard_idle(client)
            raise guard.lost_cancel()
        if self._sentinel is not None:
            await self._note_primary(client)
        elif isinstance(client, RedisCluster) and (
            call.attempts or self._cluster_primaries is None
        ):
            self._note_cluster_primaries(client)  # after a failure: did a replica take over?
        return result

    def _note_cluster_primaries(self, client: RedisCluster) -> None:
        """Cluster: say once, in one line, that the set of primaries changed (a replica took
        over a failed primary, seen by the client when it re-read the slots)."""
        primaries = frozenset(node.name for node in client.get_primaries())
        old, self._cluster_primaries = self._cluster_primaries, primaries
        if old is None or old == primaries:
            return
        self._failover_seen(
            ",".join(sorted(old - primaries)),
            ",".join(sorted(primaries - old)),
            "failover seen in the cluster's slot map; the client follows MOVED to the new one",
        )

    async def _note_primary(self, client: Redis) -> None:
        """Sentinel: say once, in one line, that the primary moved (a failover), and point every
        other pool at the new one (their idle connections to the old one are dropped)."""
        pool = client.connection_pool
        address = pool.master_address if isinstance(pool, SentinelConnectionPool) else None
        if address is None or address == self._primary:
            return
        old, self._primary = self._primary, address
        if old is None:
            return
        for other in self._clients.values():
            others = other.connection_pool
            if others is not pool and isinstance(others, SentinelConnectionPool):
                others.master_address = address
                await self._discard_idle(other)
        self._failover_seen(
            f"{old[0]}:{old[1]}",
            f"{address[0]}:{address[1]}",
            "failover seen through the sentinels; connections to the old primary dropped",
        )

    def _failover_seen(self, was: str, now: str, how: str) -> None:
        """Count a failover and say it in the one line of docs/CONTRACTS.md."""
        self.failovers += 1
        log.warning(
            "Redis %s: primary moved from %s to %s (%s)",
            self.endpoint, was, now, how,
            extra={"connection_event": "failover", "endpoint": self.endpoint,
                   "old_primary": was, "new_primary": now},
        )  # fmt: skip

    def _record_failure(self, operation: str, exc: BaseException, call: _CallRecord) -> None:
        """Count one failed attempt; a retryable one is an outage attempt for the tracker."""
        call.attempts += 1
        if is_retryable(exc):
            call.last_error = describe(exc)
            self._tracker.failed(call.key, operation, call.last_error)

    @staticmethod
    def _prefer_live(client: Redis) -> None:
        """After a cancel redis-py saw: hand out a live idle connection next. The pool is LIFO
        and the interrupted connection, closed, went back on top, so the next call would
        reconnect beside a live one. Only the single-Redis pool's list is reordered (a private
        attribute of redis-py's ConnectionPool: absent, nothing changes but the cost)."""
        idle = getattr(client.connection_pool, "_available_connections", None)
        if isinstance(idle, list):
            idle.sort(key=lambda connection: bool(getattr(connection, "is_connected", False)))

    @staticmethod
    async def _discard_idle(client: Redis) -> None:
        """Close ``client``'s idle pooled connections (they reconnect on next use)."""
        try:
            if isinstance(client, RedisCluster):
                nodes: list[ClusterNode] = client.get_nodes()
                for node in nodes:
                    await _disconnect_free(node)
            else:
                await client.connection_pool.disconnect(inuse_connections=False)
        except (RedisError, OSError) as exc:  # closing a dead socket may fail; it is gone
            log.debug("closing idle Redis connections after a cancel failed: %s", describe(exc))

    async def check(self, *, deadline: float | None = None) -> None:
        """PING under the retry policy (a readiness probe; also ends CONNECTING)."""
        await self.execute("checking the connection", lambda r: r.ping(), deadline=deadline)

    async def reset(self) -> None:
        """Drop every pool and build new ones on next use: the watchdog's lever."""
        old = self._take_clients()
        await asyncio.shield(self._close_clients(old))

    async def close(self) -> None:
        self._tracker.closed()
        old = self._take_clients()
        await asyncio.shield(self._close_clients(old))

    # -- clients -------------------------------------------------------------------------------

    def _client(self, block_timeout: float | None) -> Redis:
        """The client whose read timeout fits: the default, or block timeout + margin."""
        if self.read_timeout is None:
            timeout: float | None = None
        elif block_timeout is None:
            timeout = self.read_timeout
        else:
            timeout = blocking_read_timeout(block_timeout)
        client = self._clients.get(timeout)
        if client is None:
            client = self._clients[timeout] = self._make_client(timeout)
        return client

    def _make_client(self, socket_timeout: float | None) -> Redis:
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": socket_timeout,
            "socket_keepalive": True,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
            "decode_responses": False,
        }
        if self.name:
            options["client_name"] = self.name
        address = self.address.client_kwargs()
        if self.address.kind == "cluster":
            # MOVED/ASK are followed inside the client; every other failure comes out at once
            # (retry=0) to the one retry policy here. The client re-reads the slot map on the next
            # call after a connection failure, so a retry finds the replica that took over.
            nodes = [ClusterNode(host, port) for host, port in self.address.nodes]
            cluster = RedisCluster(startup_nodes=nodes, **address, **options)
            return cast(Redis, cluster)  # the same command methods, for single-slot calls
        if self.address.kind != "sentinel":
            return Redis(**address, **options)
        if self._sentinel is None:
            sentinel_options = {k: v for k, v in options.items() if k != "client_name"}
            sentinel_options["socket_timeout"] = self.read_timeout
            if self.address.sentinel_password:
                sentinel_options["password"] = self.address.sentinel_password
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(self.address.sentinels), sentinel_kwargs=sentinel_options, **options
            )
        assert self.address.service is not None
        master: Redis = self._sentinel.master_for(self.address.service, **address, **options)
        return master

    def _take_clients(self) -> list[Redis]:
        """Detach the current clients synchronously (no await: callers see a consistent owner)."""
        old = list(self._clients.values())
        if self._sentinel is not None:
            old.extend(self._sentinel.sentinels)
            self._sentinel = None
        self._clients = {}
        self._quiet_at.clear()
        return old

    @staticmethod
    async def _close_clients(clients: list[Redis]) -> None:
        for client in clients:
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:  # closing a dead socket may fail; it is gone
                log.debug("closing a Redis client failed: %s", describe(exc))


async def _disconnect_free(node: ClusterNode) -> None:
    """Close a cluster node's idle connections where no command can pick one up mid-close.

    redis-py's ``ClusterNode.disconnect_free_connections`` leaves them in the free list while
    it awaits their close, so a concurrent command may take one and the close then pulls the
    socket from under it (``'NoneType' object has no attribute 'writelines'``: a worker exited
    1 at SIGTERM, 1 run in 10 of the cluster durability test; not reproduced on demand). They
    go back to the list closed, and reconnect on next use, as redis-py intends. ``_free`` is
    private (redis-py 8.1); ``tests/cluster`` runs through this at every cancel."""
    free = node._free
    idle = list(free)
    free.clear()
    try:
        await asyncio.gather(*(c.disconnect() for c in idle), return_exceptions=True)
    finally:
        free.extend(idle)


def closed_under_the_call(client: Redis, exc: Exception) -> Exception:
    """The outage a cluster call met when redis-py closed its connection under it.

    A ``RedisCluster`` that meets a connection error on one node closes every connection of
    every node (``aclose``, to re-read the slot map), including those other tasks are using:
    their next write finds the socket gone as ``AttributeError: 'NoneType' object has no
    attribute 'writelines'`` (or ``read``), not as a connection error. Seen in the chaos
    scenario cluster-kill-primary-durable: the worker exited 1. It is a connection lost to a
    failover, retried like one; anything else is returned unchanged."""
    gone = "'NoneType' object has no attribute" in str(exc)
    if isinstance(client, RedisCluster) and isinstance(exc, AttributeError) and gone:
        return rx.ConnectionError(f"the cluster client closed this connection mid-call ({exc})")
    return exc
