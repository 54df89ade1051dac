"""``/metrics``, ``/healthz`` and ``/readyz`` on an optional port, served inside the event loop.

A tiny asyncio server rather than prometheus-client's thread: it lives in the worker's
TaskGroup, stops with it, and can only answer "healthy" if the loop itself is turning — a
wedged event loop makes the probe time out, which is exactly what an orchestrator should see.

- ``/readyz``: 200 when Redis is connected and the worker is not shutting down, else 503.
- ``/healthz``: 200 when the internal loops are making progress, else 503 with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry

from steadfetch.worker.config import ConfigError
from steadfetch.worker.metrics import CONTENT_TYPE, render

log = logging.getLogger("worker.http")

REQUEST_TIMEOUT = 5.0


class Probes(Protocol):
    def ready(self) -> tuple[bool, str]: ...
    def healthy(self) -> tuple[bool, str]: ...


def _response(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable", 400: "Bad Request"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class HealthServer:
    def __init__(self, probes: Probes, registry: CollectorRegistry, host: str, port: int) -> None:
        self._probes = probes
        self._registry = registry
        self.host = host
        self.port = port

    def _route(self, path: str) -> bytes:
        if path == "/metrics":
            return _response(200, render(self._registry), CONTENT_TYPE)
        probe: Callable[[], tuple[bool, str]] | None = {
            "/healthz": self._probes.healthy,
            "/readyz": self._probes.ready,
        }.get(path)
        if probe is None:
            return _response(404, b"try /metrics, /healthz or /readyz\n")
        ok, reason = probe()
        return _response(200 if ok else 503, (reason + "\n").encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                parts = request_line.decode("latin-1").split()
                path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
                writer.write(_response(400, b"bad request\n") if not path else self._route(path))
                await writer.drain()
        except (TimeoutError, OSError) as exc:
            log.debug("health request dropped: %r", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def serve(self, started: Callable[[int], None] | None = None) -> None:
        """Serve until cancelled. ``started`` gets the bound port (useful with port 0)."""
        try:
            server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:  # port taken, address not local, host unknown: the flags' fault
            cause = exc.strerror or str(exc)
            raise ConfigError(
                f"cannot serve metrics and health on {self.host}:{self.port}: {cause} "
                "(choose a free --metrics-port, 0 for any, and a local --metrics-host)"
            ) from exc
        async with server:
            bound = server.sockets[0].getsockname()[1]
            log.info(
                "metrics and health on http://%s:%d (/metrics /healthz /readyz)", self.host, bound
            )
            if started is not None:
                started(bound)
            await server.serve_forever()
