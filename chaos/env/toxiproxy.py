"""Toxiproxy: the server as a child process, and one thin wrapper over toxiproxy-python.

toxiproxy-python 0.1.1 works against server 2.12.0 but has quirks that must not leak into the
suite: its API address is a class-level global (``APIConsumer.host/port``), ``version()`` returns
bytes, ``add_toxic`` returns None, HTTP calls have no timeout and 5xx answers are not raised. This
module is the only place that touches it. It sets the address per call (under a lock, so two
servers in one process work), passes a timeout, raises on every non-2xx answer, and returns plain
values.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from steadfetch.chaos.env.binaries import toxiproxy_server_binary
from steadfetch.worker.redis_server import free_port, wait_listening

Stream = Literal["upstream", "downstream"]
HTTP_TIMEOUT = 5.0
_api_lock = threading.Lock()
_LIBRARY_ERROR_STATUS = {ProxyExists: 409, NotFound: 404, InvalidToxic: 400}


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API refused a request or did not answer."""


class ToxiproxyAPI:
    """The HTTP API of one Toxiproxy server at ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"<ToxiproxyAPI http://{self.host}:{self.port}>"

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        where = f"Toxiproxy {method} {path} at {self.host}:{self.port}"
        with _api_lock:
            APIConsumer.host, APIConsumer.port = self.host, self.port
            try:
                if method == "GET":
                    resp = APIConsumer.get(path, timeout=HTTP_TIMEOUT)
                elif method == "POST":
                    resp = APIConsumer.post(path, json=json, timeout=HTTP_TIMEOUT)
                else:
                    resp = APIConsumer.delete(path, timeout=HTTP_TIMEOUT)
            except (ProxyExists, NotFound, InvalidToxic) as exc:
                # The library raises these for 409/404/400 and drops the status; put it back.
                status = _LIBRARY_ERROR_STATUS[type(exc)]
                body = exc.args[0].decode(errors="replace").strip() if exc.args else ""
                raise ToxiproxyError(f"{where}: HTTP {status} {body}") from exc
            except Exception as exc:  # requests' connection errors and timeouts
                raise ToxiproxyError(f"{where}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code >= 300:
            raise ToxiproxyError(f"{where}: HTTP {resp.status_code} {resp.text.strip()}")
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def version(self) -> str:
        """The server version as text, e.g. ``"2.12.0"`` (2.12 answers JSON, older ones text)."""
        answer = self._call("GET", "/version")
        return str(answer["version"] if isinstance(answer, dict) else answer).strip()

    def reset(self) -> None:
        """Enable every proxy and remove every toxic (the heal-all of a nemesis teardown)."""
        self._call("POST", "/reset")

    def create_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})
        return Proxy(self, name, listen, upstream)

    def proxies(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/proxies")
        return result


@dataclass
class Proxy:
    """One proxy on a Toxiproxy server: cut it, restore it, add and remove toxics."""

    api: ToxiproxyAPI
    name: str
    listen: str
    upstream: str

    def _path(self, suffix: str = "") -> str:
        return f"/proxies/{self.name}{suffix}"

    def disable(self) -> None:
        """Cut: the listener closes and every open connection through the proxy is dropped."""
        self.api._call("POST", self._path(), {"enabled": False})

    def enable(self) -> None:
        self.api._call("POST", self._path(), {"enabled": True})

    @property
    def enabled(self) -> bool:
        return bool(self.api._call("GET", self._path())["enabled"])

    def add_toxic(
        self,
        toxic_type: str,
        *,
        stream: Stream = "downstream",
        name: str | None = None,
        toxicity: float = 1.0,
        **attributes: float,
    ) -> str:
        """Add a toxic (it applies to existing connections too) and return its name."""
        toxic_name = name or f"{toxic_type}_{stream}"
        body = {
            "name": toxic_name,
            "type": toxic_type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self.api._call("POST", self._path("/toxics"), body)
        return toxic_name

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: float
    ) -> None:
        """Change a toxic in place (toxiproxy-python has no update).

        Unlike removing it, setting ``toxicity=0`` keeps every open connection open: a
        ``timeout`` toxic's dropped data stays lost while new data flows again (a half-open
        connection that a client without a read timeout never notices).
        """
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        self.api._call("POST", self._path(f"/toxics/{name}"), body)

    def remove_toxic(self, name: str) -> None:
        self.api._call("DELETE", self._path(f"/toxics/{name}"))

    def toxics(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api._call("GET", self._path("/toxics"))
        return result

    def heal(self) -> None:
        """Remove every toxic of this proxy and enable it."""
        for toxic in self.toxics():
            self.remove_toxic(toxic["name"])
        self.enable()


class ToxiproxyServer:
    """A ``toxiproxy-server`` child process on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="steadfetch-toxiproxy-", suffix=".log")[1])
        self._proc: subprocess.Popen[bytes] | None = None
        self.api = ToxiproxyAPI(self.host, self.port)

    def __repr__(self) -> str:
        return f"<ToxiproxyServer {self.host}:{self.port}>"

    def start(self, timeout: float = 10.0) -> ToxiproxyServer:
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [toxiproxy_server_binary(), "-host", self.host, "-port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_listening(self.host, self.port, timeout, "toxiproxy-server")
        return self

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
