"""The same Redis + Toxiproxy pair as Docker containers, through testcontainers.

Both containers share one Docker network; Toxiproxy reaches Redis by its network alias. Every
published port is bound to 127.0.0.1 at a port chosen up front, so a restarted container comes
back on the same address. Images come from ``STEADFETCH_REDIS_IMAGE`` and
``STEADFETCH_TOXIPROXY_IMAGE`` (defaults: the local FROM-scratch images that
``docker/build-images.sh`` builds; the official ``redis:7`` and
``ghcr.io/shopify/toxiproxy:2.12.0`` work as well).
"""

from __future__ import annotations

import importlib
import os
import time
from contextlib import ExitStack
from typing import Any

# Ryuk's image cannot be pulled here, and these machines look like containers (/.dockerenv), which
# makes testcontainers talk to the bridge gateway instead of the published loopback ports.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

from steadfetch.chaos.env.binaries import ComponentMissing, remedy
from steadfetch.chaos.env.stack import PROXY_NAME, REDIS_FLAGS, Stack
from steadfetch.chaos.env.toxiproxy import ToxiproxyAPI
from steadfetch.worker.redis_server import free_port, resp_ping, wait_listening

REDIS_IMAGE = os.environ.get("STEADFETCH_REDIS_IMAGE", "steadfetch/redis:local")
TOXIPROXY_IMAGE = os.environ.get("STEADFETCH_TOXIPROXY_IMAGE", "steadfetch/toxiproxy:local")
LABEL = {"io.steadfetch.test": "1"}
PROXY_PORT_IN_CONTAINER = 16379


def docker_client() -> Any:
    """A docker-py client, or ComponentMissing saying why there is none."""
    try:
        client = _docker_module().from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure here means "no usable engine"
        raise ComponentMissing(
            f"no Docker engine answers ({exc.__class__.__name__}: {exc}); {remedy('docker')}"
        ) from exc
    return client


def _docker_module() -> Any:
    """docker-py, untyped: imported as Any once here rather than ignored at every use."""
    return importlib.import_module("docker")


def require_images(client: Any) -> None:
    for image in (REDIS_IMAGE, TOXIPROXY_IMAGE):
        try:
            client.images.get(image)
        except _docker_module().errors.ImageNotFound:
            raise ComponentMissing(
                f"Docker image {image} is not present and no registry is reachable; "
                f"{remedy('images')}"
            ) from None


class RedisContainer:
    """Nemesis controls for a Redis container (signals go to redis-server, PID 1).

    Reached at 127.0.0.1:``host_port`` (published there), or, with ``network``, at the
    container's own address on that Docker network (routable from the host on Linux) on
    ``host_port`` inside it: what a Redis Cluster node announces to its peers and clients."""

    def __init__(
        self, container: Any, host_port: int, password: str | None, *, network: str | None = None
    ) -> None:
        self._tc = container
        self.host_port = host_port
        self.password = password
        self.network = network
        self._ip = ""

    @property
    def _docker(self) -> Any:
        return self._tc.get_wrapped_container()

    @property
    def host(self) -> str:
        """Where Redis answers: read again after each (re)start, since Docker may give a
        restarted container another address on the network."""
        if self.network is None:
            return "127.0.0.1"
        if not self._ip:
            self._docker.reload()
            self._ip = str(
                self._docker.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]
            )
        return self._ip

    @property
    def port(self) -> int:
        return self.host_port

    @property
    def running(self) -> bool:
        self._docker.reload()
        return bool(self._docker.status == "running")

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll PING until Redis answers; a container that exited (a bad flag, say) fails at
        once with the end of its log rather than at the deadline."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            host = self.host  # "" while the container has no address (it is not "localhost")
            try:
                if host and resp_ping(host, self.host_port, self.password) == b"+PONG":
                    return
            except OSError as exc:
                last = repr(exc)
            if not self.running:
                tail = self._docker.logs(tail=5).decode(errors="replace").strip()
                code = self._docker.attrs["State"].get("ExitCode")
                name = self._docker.short_id
                raise RuntimeError(f"Redis container {name} exited ({code}): {tail}")
            time.sleep(0.05)
        raise TimeoutError(f"Redis container not ready on {self.host}:{self.host_port}: {last}")

    def stop(self) -> None:
        self._docker.stop(timeout=5)

    def start(self) -> RedisContainer:
        self._docker.start()
        self._ip = ""
        self.wait_ready()
        return self

    def kill(self) -> None:
        self._docker.kill()
        self._docker.wait(timeout=10)

    def restart(self, *, kill: bool = False) -> None:
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def pause(self) -> None:
        self._docker.kill(signal="SIGSTOP")

    def ensure_running(self) -> None:
        """Start the container again if it was stopped or killed (a nemesis' heal)."""
        if not self.running:
            self.start()

    def resume(self) -> None:
        if self.running:
            self._docker.kill(signal="SIGCONT")

    def close(self) -> None:
        """Remove the container (and its volumes); one already gone is fine."""
        try:
            self._docker.remove(force=True, v=True)
        except _docker_module().errors.NotFound:
            pass


def redis_command(*extra: str, appendonly: bool = False, password: str | None = None) -> list[str]:
    """The redis-server command line of every Redis container the suite starts (listening on
    the container's every address, no snapshots, the suite's REDIS_FLAGS), plus ``extra``."""
    command = ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]
    command += ["--appendonly", "yes" if appendonly else "no", "--appendfsync", "always"]
    command += [*REDIS_FLAGS, *extra]
    if password:
        command += ["--requirepass", password]
    return command


def start_redis_container(
    network: Any, command: list[str], *, published: int | None = None, alias: str | None = None
) -> Any:
    """A started Redis container (testcontainers' DockerContainer) on ``network``, labelled for
    cleanup; its port 6379 published on the host's 127.0.0.1:``published`` when given, and known
    on the network as ``alias`` when given. The caller removes it (``.stop()``)."""
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(REDIS_IMAGE)
        .with_command(command)
        .with_network(network)
        .with_kwargs(labels=LABEL)
    )
    if alias:
        container = container.with_network_aliases(alias)
    if published is not None:
        # docker-py takes (address, port) to publish on loopback only; testcontainers' typing
        # says int, and its with_bind_ports() cannot express an address.
        container.ports["6379/tcp"] = ("127.0.0.1", published)  # type: ignore[assignment]
    return container.start()


def start_toxiproxy_container(network: Any, closer: ExitStack) -> tuple[ToxiproxyAPI, int]:
    """The Toxiproxy container on ``network`` (removed when ``closer`` closes), once its API
    answers: the API and the host port (on 127.0.0.1) that its listen port
    :data:`PROXY_PORT_IN_CONTAINER` is published on."""
    from testcontainers.core.container import DockerContainer

    api_port, proxy_port = free_port(), free_port()
    toxi_tc = (
        DockerContainer(TOXIPROXY_IMAGE)
        .with_command(["-host=0.0.0.0"])
        .with_network(network)
        .with_kwargs(labels=LABEL)
    )
    toxi_tc.ports["8474/tcp"] = ("127.0.0.1", api_port)  # type: ignore[assignment]
    toxi_tc.ports[f"{PROXY_PORT_IN_CONTAINER}/tcp"] = ("127.0.0.1", proxy_port)  # type: ignore[assignment]
    toxi_tc.start()
    closer.callback(toxi_tc.stop)
    wait_listening("127.0.0.1", api_port, 15, "Toxiproxy container API")
    api = ToxiproxyAPI("127.0.0.1", api_port)
    _wait_api(api)
    return api, proxy_port


def start_docker_stack(*, appendonly: bool = False, password: str | None = None) -> Stack:
    from testcontainers.core.network import Network

    client = docker_client()
    require_images(client)
    closer = ExitStack()
    try:
        network = Network().create()
        closer.callback(network.remove)

        redis_port = free_port()
        command = redis_command(appendonly=appendonly, password=password)
        redis_tc = start_redis_container(network, command, published=redis_port, alias="redis")
        closer.callback(redis_tc.stop)
        redis = RedisContainer(redis_tc, redis_port, password)
        redis.wait_ready()

        api, proxy_port = start_toxiproxy_container(network, closer)
        proxy = api.create_proxy(PROXY_NAME, f"0.0.0.0:{PROXY_PORT_IN_CONTAINER}", "redis:6379")
    except BaseException:
        closer.close()
        raise
    return Stack(
        env="docker",
        redis=redis,
        redis_host="127.0.0.1",
        redis_port=redis_port,
        toxiproxy=api,
        proxy=proxy,
        proxy_host="127.0.0.1",
        proxy_port=proxy_port,
        password=password,
        _closer=closer,
    )


def _wait_api(api: ToxiproxyAPI, timeout: float = 15.0) -> None:
    """Docker's port forwarder accepts before the process behind it answers: poll the API."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.version()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def remove_leftover_containers() -> int:
    """Remove containers a crashed run left behind (by label). Returns how many."""
    client = docker_client()
    leftovers = client.containers.list(all=True, filters={"label": "io.steadfetch.test=1"})
    for container in leftovers:
        container.remove(force=True)
    return len(leftovers)
