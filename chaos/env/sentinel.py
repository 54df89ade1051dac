"""A Sentinel-managed Redis for the failover scenarios: a primary behind Toxiproxy, one replica,
three sentinels (local processes, or containers: :func:`_start_docker`).

The primary is known to the sentinels and the clients by its proxy address (it announces that
port when it is demoted to a replica); the replica replicates through a second proxy of its own
(``replication``), so a toxic there makes it miss writes the primary acknowledged. The
sentinels do not like that: within ~10 s they "fix" the replica to replicate from the address
they know (the first proxy), and a failover asked meanwhile aborts ("no good slave") while it
resyncs. So the faults other than the lagging kill move it there themselves first
(:func:`chaos.failover.replica_on_main_link`). Disabling the
first proxy partitions the primary from the sentinels and the clients, and a failover moves
the clients from the proxy to the replica's own address (which the sentinels announce as they
see it: both are on 127.0.0.1).

:class:`SentinelStack` has the :class:`chaos.env.stack.Stack` shape; both of its URLs are the
``redis+sentinel://`` URL (the producer and the checker follow the primary as the worker does),
and ``redis`` is the first primary (the nemesis' handle on it).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis as redis_py

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.stack import PROXY_NAME, REDIS_FLAGS, EnvName, Stack
from steadfetch.chaos.env.toxiproxy import Proxy, ToxiproxyAPI, ToxiproxyServer
from steadfetch.worker.redis_server import free_port, wait_listening

if TYPE_CHECKING:
    from steadfetch.chaos.env.containers import RedisContainer

SERVICE = "mymaster"
SENTINELS = 3
QUORUM = 2
#: 2.5 s, not 1: with 1 s the sentinels sometimes failed back to a restarted old primary on a
#: loaded 2-core machine (the new one missed their pings that long), a second failover that lost
#: what the first new primary had acknowledged (failover-kill, 80 jobs, 2026-11-30).
DOWN_AFTER_MS = 2500
FAILOVER_TIMEOUT_MS = 4000
READY_TIMEOUT = 30.0
#: Replication starts at once (Redis 7 waits 5 s for more replicas before a diskless sync).
REPLICATION_FLAGS = ("--repl-diskless-sync-delay", "0")
REPLICATION_PROXY = "replication"


class SentinelProcess(RedisServer):
    """A real ``redis-server --sentinel`` on a free port, monitoring one primary as ``service``.

    The child process (start, readiness by PING, stop, reap) is :class:`RedisServer`'s; only the
    argv differs: a Sentinel reads its monitoring configuration from a file.
    """

    def __init__(
        self,
        master_host: str,
        master_port: int,
        directory: Path,
        *,
        service: str = SERVICE,
        quorum: int = 1,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
    ) -> None:
        super().__init__(dir_prefix="steadfetch-sentinel-")
        self.config = directory / f"sentinel-{self.port}.conf"
        self.log = self.log_path = directory / f"sentinel-{self.port}.log"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\nlogfile {self.log}\n"
            f"sentinel monitor {service} {master_host} {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {failover_timeout_ms}\n"
        )

    def command(self) -> list[str]:
        return [self.find_binary(), str(self.config), "--sentinel"]


@dataclass
class SentinelStack(Stack):
    """A :class:`Stack` whose Redis is a Sentinel service (see the module docstring)."""

    replica: object | None = None  # a RedisServer, or a RedisContainer in the docker env
    replica_port: int = 0
    replication: Proxy | None = None
    """The replica's own link to the primary (a second proxy): a toxic here makes the replica
    lag or miss writes that the primary acknowledges, while clients and sentinels see nothing."""
    sentinel_ports: list[int] = field(default_factory=list)

    @property
    def sentinel_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def direct_url(self) -> str:
        return self.sentinel_url

    @property
    def proxied_url(self) -> str:
        return self.sentinel_url

    def sentinel(self, index: int = 0) -> redis_py.Redis:
        """A plain client to one sentinel (the caller closes it)."""
        return redis_py.Redis(port=self.sentinel_ports[index], socket_timeout=5.0)

    def primary_address(self) -> tuple[str, int] | None:
        """The primary as the first sentinel that answers names it."""
        for index in range(len(self.sentinel_ports)):
            client = self.sentinel(index)
            try:
                reply: Any = client.sentinel_get_master_addr_by_name(SERVICE)
                return str(reply[0].decode() if isinstance(reply[0], bytes) else reply[0]), int(
                    reply[1]
                )
            except (redis_py.RedisError, OSError, TypeError):
                continue
            finally:
                client.close()
        return None


def start_sentinel_stack(env: EnvName = "local", *, appendonly: bool = True) -> SentinelStack:
    """Primary (behind the proxy), replica, three sentinels; returns once the sentinels know the
    replica and each other (so a failover can start at once)."""
    if env == "docker":
        return _start_docker(appendonly=appendonly)
    closer = ExitStack()
    try:
        toxi = closer.enter_context(ToxiproxyServer())
        proxy_port = free_port()
        primary = RedisServer(
            appendonly=appendonly,
            extra_args=[
                *REDIS_FLAGS,
                *REPLICATION_FLAGS,
                "--replica-announce-port",
                str(proxy_port),
            ],
        )
        closer.enter_context(primary)
        proxy = toxi.api.create_proxy(
            PROXY_NAME, f"127.0.0.1:{proxy_port}", f"127.0.0.1:{primary.port}"
        )
        link_port = free_port()
        replication = toxi.api.create_proxy(
            REPLICATION_PROXY, f"127.0.0.1:{link_port}", f"127.0.0.1:{primary.port}"
        )
        replica = RedisServer(
            appendonly=appendonly,
            extra_args=[
                *REDIS_FLAGS,
                *REPLICATION_FLAGS,
                "--replicaof",
                "127.0.0.1",
                str(link_port),
            ],
        )
        closer.enter_context(replica)
        directory = primary.dir
        sentinels = []
        for _ in range(SENTINELS):
            process = SentinelProcess(
                "127.0.0.1",
                proxy_port,
                directory,
                quorum=QUORUM,
                down_after_ms=DOWN_AFTER_MS,
                failover_timeout_ms=FAILOVER_TIMEOUT_MS,
            ).start()
            closer.callback(process.close)
            sentinels.append(process)
        stack = SentinelStack(
            env="local",
            redis=primary,
            redis_host=primary.host,
            redis_port=primary.port,
            toxiproxy=toxi.api,
            proxy=proxy,
            proxy_host="127.0.0.1",
            proxy_port=proxy_port,
            _closer=closer,
            replica=replica,
            replica_port=replica.port,
            replication=replication,
            sentinel_ports=[s.port for s in sentinels],
        )
        _wait_settled(stack)
    except BaseException:
        closer.close()
        raise
    return stack


def _sentinel_conf(port: int, proxy_port: int, directory: str) -> str:
    return (
        f"port {port}\nbind 0.0.0.0\nprotected-mode no\ndir {directory}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {proxy_port} {QUORUM}\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
    )


class _Wrapped:
    """A docker-py container in the shape RedisContainer expects (testcontainers' wrapper)."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def get_wrapped_container(self) -> Any:
        return self._container


def _start_docker(*, appendonly: bool) -> SentinelStack:
    """The same topology as containers on one Docker network, all in the network namespace of
    the Toxiproxy container: every node is 127.0.0.1:PORT inside it, and each PORT is published
    as the same number on the host's 127.0.0.1. So the addresses the sentinels announce (and the
    replica's announced address) are reachable from the containers and from the host-side
    worker alike, and nothing is published beyond loopback."""
    import uuid

    from steadfetch.chaos.env.containers import docker_client, require_images

    client = docker_client()
    require_images(client)
    closer = ExitStack()
    try:
        network = client.networks.create(f"steadfetch-sentinel-{uuid.uuid4().hex[:8]}")
        closer.callback(network.remove)
        api_port, proxy_port, link_port, primary_port, replica_port = (
            free_port() for _ in range(5)
        )
        sentinel_ports = [free_port() for _ in range(SENTINELS)]
        published = [proxy_port, primary_port, replica_port, *sentinel_ports]
        containers = _Containers(client, closer, appendonly=appendonly)
        api = containers.toxiproxy(network.name, api_port, published)
        primary = containers.redis_node(primary_port, "--replica-announce-port", str(proxy_port))
        proxy = api.create_proxy(PROXY_NAME, f"0.0.0.0:{proxy_port}", f"127.0.0.1:{primary_port}")
        replication = api.create_proxy(
            REPLICATION_PROXY, f"127.0.0.1:{link_port}", f"127.0.0.1:{primary_port}"
        )
        replica = containers.redis_node(replica_port, "--replicaof", "127.0.0.1", str(link_port))
        for port in sentinel_ports:
            containers.sentinel(port, proxy_port)
        stack = SentinelStack(
            env="docker",
            redis=primary,
            redis_host="127.0.0.1",
            redis_port=primary_port,
            toxiproxy=api,
            proxy=proxy,
            proxy_host="127.0.0.1",
            proxy_port=proxy_port,
            _closer=closer,
            replica=replica,
            replica_port=replica_port,
            replication=replication,
            sentinel_ports=sentinel_ports,
        )
        _wait_settled(stack)
    except BaseException:
        closer.close()
        raise
    return stack


class _Containers:
    """The steps of :func:`_start_docker`: each starts one container, removed when ``closer``
    closes; the Toxiproxy container first, then the nodes in its network namespace."""

    def __init__(self, client: Any, closer: ExitStack, *, appendonly: bool) -> None:
        self.client = client
        self.closer = closer
        self.appendonly = appendonly
        self.shared = ""  # the nodes' network mode: "container:<Toxiproxy container id>"

    def _removed(self, container: Any) -> None:
        self.closer.callback(lambda: container.remove(force=True))

    def toxiproxy(self, network: str, api_port: int, published: list[int]) -> ToxiproxyAPI:
        """The Toxiproxy container, its API and the ``published`` ports on the host's
        127.0.0.1 (same numbers inside); its API once it answers."""
        from steadfetch.chaos.env.containers import LABEL, TOXIPROXY_IMAGE, _wait_api

        toxi = self.client.containers.run(
            TOXIPROXY_IMAGE,
            ["-host=0.0.0.0"],
            detach=True,
            network=network,
            labels=LABEL,
            ports={"8474/tcp": ("127.0.0.1", api_port)}
            | {f"{port}/tcp": ("127.0.0.1", port) for port in published},
        )
        self._removed(toxi)
        wait_listening("127.0.0.1", api_port, 15, "Toxiproxy container API")
        api = ToxiproxyAPI("127.0.0.1", api_port)
        _wait_api(api)
        self.shared = f"container:{toxi.id}"
        return api

    def redis_node(self, port: int, *extra: str) -> RedisContainer:
        """A redis-server on ``port`` with ``extra`` flags, once it answers PING."""
        from steadfetch.chaos.env.containers import LABEL, REDIS_IMAGE, RedisContainer

        command = ["redis-server", "--port", str(port), "--bind", "0.0.0.0"]
        command += ["--protected-mode", "no", "--save", "", "--appendfsync", "always"]
        command += ["--appendonly", "yes" if self.appendonly else "no"]
        command += [*REDIS_FLAGS, *REPLICATION_FLAGS, *extra]
        container = self.client.containers.run(
            REDIS_IMAGE, command, detach=True, network_mode=self.shared, labels=LABEL
        )
        self._removed(container)
        node = RedisContainer(_Wrapped(container), port, None)
        node.wait_ready()
        return node

    def sentinel(self, port: int, proxy_port: int) -> None:
        """A sentinel on ``port`` monitoring the primary at ``proxy_port``: its configuration
        is copied into the created container (as a tar archive) before it starts."""
        import io
        import tarfile

        from steadfetch.chaos.env.containers import LABEL, REDIS_IMAGE

        container = self.client.containers.create(
            REDIS_IMAGE,
            ["redis-server", "/data/sentinel.conf", "--sentinel"],
            network_mode=self.shared,
            labels=LABEL,
        )
        self._removed(container)
        conf = _sentinel_conf(port, proxy_port, "/data").encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("sentinel.conf")
            info.size = len(conf)
            tar.addfile(info, io.BytesIO(conf))
        container.put_archive("/data", archive.getvalue())
        container.start()
        wait_listening("127.0.0.1", port, 15, "Sentinel container")


def _wait_settled(stack: SentinelStack) -> None:
    """The replica is in sync (WAIT can count it) and every sentinel sees it and its peers."""
    deadline = time.monotonic() + READY_TIMEOUT
    primary = stack.admin()
    try:
        while primary.info("replication").get("slave0", {}).get("state") != "online":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica was not in sync within {READY_TIMEOUT:.0f} s")
            time.sleep(0.05)
    finally:
        primary.close()
    for index in range(len(stack.sentinel_ports)):
        client = stack.sentinel(index)
        try:
            while True:
                replicas: Any = client.sentinel_slaves(SERVICE)
                peers: Any = client.sentinel_sentinels(SERVICE)
                good = [r for r in replicas if "disconnected" not in str(r.get("flags", ""))]
                if good and len(peers) >= SENTINELS - 1:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"sentinel {stack.sentinel_ports[index]} did not see the replica and its "
                        f"peers within {READY_TIMEOUT:.0f} s (replicas={replicas}, peers={peers})"
                    )
                time.sleep(0.1)
        finally:
            client.close()
