"""A real Redis Cluster as local processes: three primaries and three replicas.

Each node is the one ``redis-server`` child (:class:`chaos.env.redis_server.RedisServer`) started
in cluster mode; ``redis-cli --cluster create ... --cluster-replicas 1`` assigns the slots and the
replicas, and :meth:`LocalCluster.start` returns once ``CLUSTER INFO`` says ``cluster_state:ok``
on every node (polled with a deadline). ``redis-cli`` is used for setup and checks, not a client
library: the chaos suite reaches Redis only through ``fetcher``.

A short ``cluster-node-timeout`` (1 s) makes a killed primary's replica take over within a few
seconds, which the failover tests and the chaos scenario rely on.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Self

from steadfetch.chaos.env.binaries import ComponentMissing, redis_cli_binary
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.stack import PROXY_NAME, Stack
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


def cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """``redis-cli -p PORT ARGS...``'s output (raises on a non-zero exit)."""
    done = subprocess.run(
        [redis_cli_binary(), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli -p {port} {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


class LocalCluster:
    """``primaries`` primaries with ``replicas`` replica each, on loopback ports."""

    def __init__(self, primaries: int = 3, replicas: int = 1) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/"

    def start(self, timeout: float = 60.0) -> Self:
        extra = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        ]  # fmt: skip
        try:
            for _ in range(self.primaries * (1 + self.replicas)):
                self.nodes.append(RedisServer(_cluster_port(), extra_args=extra).start())
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            cli(
                self.nodes[0].port,
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
                last = cli(node.port, "cluster", "info")
                if "cluster_state:ok" in last and "cluster_slots_ok:16384" in last:
                    last = cli(node.port, "info", "replication")
                    if "role:master" in last or "master_link_status:up" in last:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"cluster node {node.port} not ok within {timeout:.0f} s: {last!r}"
                    )
                time.sleep(0.05)

    def wait_replicated(self, primary: RedisServer, timeout: float = 30.0) -> None:
        """Poll until every replica of ``primary`` has acknowledged all it was sent so far (so
        killing ``primary`` now loses no acknowledged write)."""
        deadline = time.monotonic() + timeout
        target: int | None = None
        while True:
            info = dict(
                line.split(":", 1) for line in cli(primary.port, "info", "replication").split()
                if ":" in line
            )  # fmt: skip
            target = int(info["master_repl_offset"]) if target is None else target
            offsets = [
                int(dict(f.split("=") for f in v.split(","))["offset"])
                for k, v in info.items()
                if k.startswith("slave") and k[5:].isdigit()
            ]
            if offsets and min(offsets) >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas of {primary.port} not at offset {target}: {info}")
            time.sleep(0.05)

    def role(self, node: RedisServer) -> str:
        """``master`` or ``slave`` (ROLE's first word)."""
        return cli(node.port, "role").split()[0]

    def primary_nodes(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running and self.role(n) == "master"]

    def primary_of(self, key: str) -> RedisServer:
        """The running primary that serves ``key``'s slot now."""
        slot = int(cli(self.nodes[0].port, "cluster", "keyslot", key).strip())
        for node in self.primary_nodes():
            for line in cli(node.port, "cluster", "nodes").splitlines():
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


#: The queue the cluster scenarios run on, and whose slot's primary the nemesis kills.
CHAOS_QUEUE_KEY = "steadfetch:queue:default"


class ClusterNodeControl:
    """The nemesis' handle on "the primary": whichever node serves the chaos queue's slot now
    (after a failover, the promoted replica). A heal restarts every stopped node and waits until
    the cluster is whole again."""

    def __init__(self, cluster: LocalCluster, key: str = CHAOS_QUEUE_KEY) -> None:
        self.cluster = cluster
        self.key = key

    def _primary(self) -> RedisServer:
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


def start_cluster_stack(env: str = "local") -> Stack:
    """A :class:`LocalCluster` in the :class:`Stack` shape: both URLs are the
    ``redis+cluster://`` URL, ``redis`` is the chaos queue's primary
    (:class:`ClusterNodeControl`). Toxiproxy runs with one proxy to that primary only because
    the stack's heal and teardown checks expect one; the cluster scenarios apply no toxics.
    Local processes only: the docker environment has no cluster (docs/CONTRACTS.md)."""
    if env != "local":
        raise ComponentMissing("the Redis Cluster scenarios run in the local environment only")
    closer = ExitStack()
    try:
        cluster = closer.enter_context(LocalCluster())
        toxi = closer.enter_context(ToxiproxyServer())
        primary = cluster.primary_of(CHAOS_QUEUE_KEY)
        proxy_port = free_port()
        proxy = toxi.api.create_proxy(
            PROXY_NAME, f"127.0.0.1:{proxy_port}", f"127.0.0.1:{primary.port}"
        )
    except BaseException:
        closer.close()
        raise
    return ClusterStack(
        env="local",
        redis=ClusterNodeControl(cluster),
        redis_host="127.0.0.1",
        redis_port=primary.port,
        toxiproxy=toxi.api,
        proxy=proxy,
        proxy_host="127.0.0.1",
        proxy_port=proxy_port,
        cluster=cluster,
        _closer=closer,
    )


@dataclass
class ClusterStack(Stack):
    cluster: LocalCluster | None = None

    @property
    def direct_url(self) -> str:
        assert self.cluster is not None
        return self.cluster.url

    @property
    def proxied_url(self) -> str:
        return self.direct_url
