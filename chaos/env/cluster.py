"""A real Redis Cluster: three primaries and three replicas, as local processes or containers.

Each node is the one ``redis-server`` child (:class:`chaos.env.redis_server.RedisServer`,
:class:`LocalCluster`) or a container of the Redis image on one Docker network
(:class:`chaos.env.containers.RedisContainer`, :class:`DockerCluster`), started in cluster mode;
``redis-cli --cluster create ... --cluster-replicas 1`` assigns the slots and the replicas, and
:meth:`Cluster.start` returns once ``CLUSTER INFO`` says ``cluster_state:ok`` on every node
(polled with a deadline). ``redis-cli`` is used for setup and checks, not a client
library: the chaos suite reaches Redis only through ``fetcher``.

A short ``cluster-node-timeout`` (1 s) makes a killed primary's replica take over within a few
seconds, which the failover tests and the chaos scenario rely on.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol, Self

from steadfetch.chaos.env.binaries import redis_cli_binary
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.sentinel import REPLICATION_FLAGS
from steadfetch.chaos.env.stack import PROXY_NAME, EnvName, Stack
from steadfetch.chaos.env.toxiproxy import ToxiproxyServer
from steadfetch.worker.redis_server import free_port

#: ``cluster-node-timeout`` of every node, in milliseconds.
NODE_TIMEOUT_MS = 1000


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def cli(port: int, *args: str, host: str = "127.0.0.1", timeout: float = 10.0) -> str:
    """``redis-cli -h HOST -p PORT ARGS...``'s output (raises on a non-zero exit)."""
    done = subprocess.run(
        [redis_cli_binary(), "-h", host, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"redis-cli -h {host} -p {port} {' '.join(args)}: {done.stderr or done.stdout}"
        )
    return done.stdout


class ClusterNode(Protocol):
    """One node, whatever runs it: a local ``redis-server`` child (:class:`RedisServer`) or a
    container (:class:`chaos.env.containers.RedisContainer` on the cluster's network)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def start(self) -> object: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...


#: The flags that make a redis-server a cluster node (both environments).
CLUSTER_FLAGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
    *REPLICATION_FLAGS,
)  # fmt: skip


class Cluster:
    """``primaries`` primaries with ``replicas`` replica each: :meth:`start_nodes` (one per
    environment) starts the bare nodes, the rest (slots and replicas by ``redis-cli --cluster
    create``, readiness, who serves what) is the same everywhere. Every node is addressed as it
    announces itself (``node.host:node.port``): the test process reaches it as the worker does."""

    def __init__(
        self, primaries: int = 3, replicas: int = 1, *, extra_args: Sequence[str] = ()
    ) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.nodes: list[ClusterNode] = []
        self.flags = [*CLUSTER_FLAGS, *extra_args]
        """Every node's redis-server flags: :data:`CLUSTER_FLAGS`, then ``extra_args``."""

    @property
    def size(self) -> int:
        return self.primaries * (1 + self.replicas)

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes) + "/"

    def start_nodes(self) -> None:
        """Start :attr:`size` bare cluster nodes into :attr:`nodes`, each answering PING."""
        raise NotImplementedError

    def cli(self, node: ClusterNode, *args: str, timeout: float = 10.0) -> str:
        return cli(node.port, *args, host=node.host, timeout=timeout)

    def start(self, timeout: float = 60.0) -> Self:
        try:
            self.start_nodes()
            addresses = [f"{n.host}:{n.port}" for n in self.nodes]
            self.cli(
                self.nodes[0],
                "--cluster", "create", *addresses,
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
                timeout=timeout,
            )  # fmt: skip
            self.wait_ok(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Poll until every running node says ``cluster_state:ok`` and knows every slot, and
        every replica's link to its primary is up (a replica that never synced cannot take
        over: the first sync can take seconds on a loaded machine)."""
        deadline = time.monotonic() + timeout
        last = ""
        for node in [n for n in self.nodes if n.running]:
            while True:
                last = self.cli(node, "cluster", "info")
                if "cluster_state:ok" in last and "cluster_slots_ok:16384" in last:
                    last = self.cli(node, "info", "replication")
                    if "role:master" in last or "master_link_status:up" in last:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"cluster node {node.host}:{node.port} not ok within {timeout:.0f} s: "
                        f"{last!r}"
                    )
                time.sleep(0.05)

    def replication(self, node: ClusterNode) -> dict[str, str]:
        """``INFO replication`` as a dict."""
        text = self.cli(node, "info", "replication")
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def wait_replicated(self, primary: ClusterNode, timeout: float = 30.0) -> None:
        """Poll until every replica of ``primary`` has acknowledged all it was sent so far (so
        killing ``primary`` now loses no acknowledged write)."""
        deadline = time.monotonic() + timeout
        target: int | None = None
        while True:
            info = self.replication(primary)
            target = int(info["master_repl_offset"]) if target is None else target
            offsets = [
                int(dict(f.split("=") for f in v.split(","))["offset"])
                for k, v in info.items()
                if k.startswith("slave") and k[5:].isdigit()
            ]
            if offsets and min(offsets) >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"replicas of {primary.host}:{primary.port} not at offset {target}: {info}"
                )
            time.sleep(0.05)

    def role(self, node: ClusterNode) -> str:
        """``master`` or ``slave`` (ROLE's first word)."""
        return self.cli(node, "role").split()[0]

    def primary_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running and self.role(n) == "master"]

    def primary_of(self, key: str) -> ClusterNode:
        """The running primary that serves ``key``'s slot now."""
        primaries = self.primary_nodes()
        if not primaries:
            raise LookupError("no running primary")
        slot = int(self.cli(primaries[0], "cluster", "keyslot", key).strip())
        for node in primaries:
            for line in self.cli(node, "cluster", "nodes").splitlines():
                fields = line.split()
                if "myself" in fields[2]:
                    for span in fields[8:]:
                        low, _, high = span.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return node
        raise LookupError(f"no running primary serves slot {slot} of {key!r}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalCluster(Cluster):
    """The nodes are local ``redis-server`` children on loopback ports."""

    def start_nodes(self) -> None:
        for _ in range(self.size):
            self.nodes.append(RedisServer(_cluster_port(), extra_args=self.flags).start())


class DockerCluster(Cluster):
    """The nodes are containers of the Redis image on one Docker network (``network``: the
    caller's, testcontainers' or docker-py's; only its ``name`` is used), started in parallel.
    Each listens on 6379 at its own address on the network, which it announces to its peers and
    clients: the test process on the host reaches it there (on Linux a bridge network's
    addresses are routable from the host) as any container on the network would; nothing is
    published."""

    def __init__(
        self,
        network: Any,
        primaries: int = 3,
        replicas: int = 1,
        *,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(primaries, replicas, extra_args=extra_args)
        self.network = network

    def start_nodes(self) -> None:
        from steadfetch.chaos.env.containers import (
            RedisContainer,
            redis_command,
            start_redis_container,
        )

        command = redis_command(*self.flags)

        def node() -> ClusterNode:
            container = RedisContainer(
                start_redis_container(self.network, command), 6379, None, network=self.network.name
            )
            try:
                container.wait_ready()
            except BaseException:
                container.close()
                raise
            return container

        with ThreadPoolExecutor(self.size) as pool:
            futures = [pool.submit(node) for _ in range(self.size)]
        errors = []
        for future in futures:
            try:
                self.nodes.append(future.result())
            except Exception as exc:  # noqa: BLE001 -- keep the ones that started, to close them
                errors.append(exc)
        if errors:
            raise errors[0]


#: The queue the cluster scenarios run on, and whose slot's primary the nemesis kills.
CHAOS_QUEUE_KEY = "steadfetch:queue:default"


class ClusterNodeControl:
    """The nemesis' handle on "the primary": whichever node serves the chaos queue's slot now
    (after a failover, the promoted replica). A heal restarts every stopped node and waits until
    the cluster is whole again."""

    def __init__(self, cluster: Cluster, key: str = CHAOS_QUEUE_KEY) -> None:
        self.cluster = cluster
        self.key = key

    def _primary(self) -> ClusterNode:
        return self.cluster.primary_of(self.key)

    def kill(self) -> None:
        self._primary().kill()

    def stop(self) -> None:
        self._primary().stop()

    def start(self) -> object:
        self.ensure_running()
        return self

    def restart(self, *, kill: bool = False) -> None:
        (self.kill if kill else self.stop)()
        self.ensure_running()

    def pause(self) -> None:
        self._primary().pause()

    def resume(self) -> None:
        for node in self.cluster.nodes:
            node.resume()

    def ensure_running(self) -> None:
        for node in self.cluster.nodes:
            if not node.running:
                node.start()
        self.cluster.wait_ok()


def start_cluster_stack(env: EnvName = "local") -> Stack:
    """A 3+3 :class:`Cluster` in the :class:`Stack` shape: both URLs are the
    ``redis+cluster://`` URL, ``redis`` is the chaos queue's primary
    (:class:`ClusterNodeControl`). Toxiproxy runs with one proxy to that primary only because
    the stack's heal and teardown checks expect one; the cluster scenarios apply no toxics.
    ``local``: redis-server children and toxiproxy-server; ``docker``: containers on one Docker
    network (:class:`DockerCluster`; the Toxiproxy container on the same network)."""
    closer = ExitStack()
    try:
        if env == "local":
            cluster: Cluster = closer.enter_context(LocalCluster())
            api = closer.enter_context(ToxiproxyServer()).api
            proxy_port = free_port()
            listen = f"127.0.0.1:{proxy_port}"
        elif env == "docker":
            from testcontainers.core.network import Network

            from steadfetch.chaos.env.containers import (
                PROXY_PORT_IN_CONTAINER,
                docker_client,
                require_images,
                start_toxiproxy_container,
            )

            require_images(docker_client())
            network = Network().create()
            closer.callback(network.remove)
            # Toxiproxy and the nodes start together: each takes about a second of Docker's time.
            with ThreadPoolExecutor(1) as pool:
                toxi = pool.submit(start_toxiproxy_container, network, closer)
                cluster = closer.enter_context(DockerCluster(network))
                api, proxy_port = toxi.result()
            listen = f"0.0.0.0:{PROXY_PORT_IN_CONTAINER}"
        else:
            raise ValueError(f"unknown environment {env!r}")
        primary = cluster.primary_of(CHAOS_QUEUE_KEY)
        proxy = api.create_proxy(PROXY_NAME, listen, f"{primary.host}:{primary.port}")
    except BaseException:
        closer.close()
        raise
    return ClusterStack(
        env=env,
        redis=ClusterNodeControl(cluster),
        redis_host=primary.host,
        redis_port=primary.port,
        toxiproxy=api,
        proxy=proxy,
        proxy_host="127.0.0.1",
        proxy_port=proxy_port,
        cluster=cluster,
        _closer=closer,
    )


@dataclass
class ClusterStack(Stack):
    cluster: Cluster | None = None

    @property
    def direct_url(self) -> str:
        assert self.cluster is not None
        return self.cluster.url

    @property
    def proxied_url(self) -> str:
        return self.direct_url
