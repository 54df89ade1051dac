"""A Redis behind a Toxiproxy proxy, as local processes or as containers: one shape for both.

``Stack.direct_url`` reaches Redis without the proxy (checkers, setup); ``Stack.proxied_url``
goes through the proxy (the system under test). ``Stack.redis`` is the nemesis' handle on the
server itself.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from steadfetch.chaos.env.binaries import ComponentMissing
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.toxiproxy import Proxy, ToxiproxyAPI, ToxiproxyServer
from steadfetch.worker.redis_server import free_port

if TYPE_CHECKING:
    from redis import Redis

EnvName = Literal["local", "docker"]
ENV_NAMES: tuple[EnvName, ...] = ("local", "docker")
PROXY_NAME = "redis"
REDIS_FLAGS = ("--enable-debug-command", "yes", "--enable-protected-configs", "yes")
"""Start flags for every Redis the suite runs (both environments): the Redis-side faults need
DEBUG SLEEP and CONFIG SET dir (MISCONF), which Redis 7 refuses by default."""


class RedisControl(Protocol):
    """What a nemesis can do to the Redis server itself, whatever runs it."""

    def stop(self) -> None: ...
    def start(self) -> object: ...
    def restart(self, *, kill: bool = False) -> None: ...
    def kill(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def ensure_running(self) -> None: ...


@dataclass
class Stack:
    env: EnvName
    redis: RedisControl
    redis_host: str
    redis_port: int
    toxiproxy: ToxiproxyAPI
    proxy: Proxy
    proxy_host: str
    proxy_port: int
    password: str | None = None
    _closer: ExitStack = field(default_factory=ExitStack, repr=False)

    def _url(self, host: str, port: int) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{host}:{port}/0"

    @property
    def direct_url(self) -> str:
        return self._url(self.redis_host, self.redis_port)

    @property
    def proxied_url(self) -> str:
        return self._url(self.proxy_host, self.proxy_port)

    def heal(self) -> None:
        """Undo every fault: resume Redis, start it if it is down, remove toxics, enable the proxy.

        Each step runs even when an earlier one failed; the first failure is raised at the end.
        """
        errors: list[Exception] = []
        for step in (self.redis.resume, self.redis.ensure_running, self.toxiproxy.reset):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 -- heal the rest, then raise the first
                errors.append(exc)
        if errors:
            raise errors[0]

    def admin(self, timeout: float | None = 10.0) -> Redis:
        """A plain client straight to Redis (not through the proxy), for the nemesis' Redis-side
        faults: CONFIG SET, DEBUG SLEEP, CLIENT PAUSE, a long script... ``timeout=None`` for a
        command that blocks on purpose. The caller closes it."""
        from redis import Redis

        return Redis(
            host=self.redis_host,
            port=self.redis_port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=5.0,
        )  # no client name: CLIENT SETNAME on connect is refused while Redis is BUSY

    def close(self) -> None:
        self._closer.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_stack(
    env: EnvName,
    *,
    appendonly: bool = False,
    password: str | None = None,
    sentinel: bool = False,
    cluster: bool = False,
) -> Stack:
    """Start Redis + Toxiproxy + a proxy in ``env``. Raises ComponentMissing when it can't.

    ``sentinel``: a Sentinel service instead (chaos.env.sentinel; no password). ``cluster``: a
    Redis Cluster of three primaries and three replicas (chaos.env.cluster: local processes or
    containers)."""
    if cluster:
        from steadfetch.chaos.env.cluster import start_cluster_stack

        return start_cluster_stack(env)
    if sentinel:
        from steadfetch.chaos.env.sentinel import start_sentinel_stack

        return start_sentinel_stack(env, appendonly=appendonly)
    if env == "local":
        return _start_local(appendonly=appendonly, password=password)
    if env == "docker":
        from steadfetch.chaos.env.containers import start_docker_stack

        return start_docker_stack(appendonly=appendonly, password=password)
    raise ValueError(f"unknown environment {env!r}: choose one of {', '.join(ENV_NAMES)}")


def _start_local(*, appendonly: bool, password: str | None) -> Stack:
    closer = ExitStack()
    try:
        redis = closer.enter_context(
            RedisServer(appendonly=appendonly, password=password, extra_args=list(REDIS_FLAGS))
        )
        toxi = closer.enter_context(ToxiproxyServer())
        proxy_port = free_port()
        proxy = toxi.api.create_proxy(
            PROXY_NAME, f"127.0.0.1:{proxy_port}", f"127.0.0.1:{redis.port}"
        )
    except BaseException:
        closer.close()
        raise
    return Stack(
        env="local",
        redis=redis,
        redis_host=redis.host,
        redis_port=redis.port,
        toxiproxy=toxi.api,
        proxy=proxy,
        proxy_host="127.0.0.1",
        proxy_port=proxy_port,
        password=password,
        _closer=closer,
    )


def selected_envs() -> list[EnvName]:
    """Environments chosen by ``STEADFETCH_CHAOS_ENV`` (``local``, ``docker`` or ``all``)."""
    raw = os.environ.get("STEADFETCH_CHAOS_ENV", "all").strip().lower()
    if raw in ("", "all", "both"):
        return list(ENV_NAMES)
    names = [n.strip() for n in raw.split(",")]
    bad = [n for n in names if n not in ENV_NAMES]
    if bad:
        raise ComponentMissing(f"STEADFETCH_CHAOS_ENV has unknown environment(s) {bad}")
    return [n for n in ENV_NAMES if n in names]
