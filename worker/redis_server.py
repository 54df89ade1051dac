"""A real ``redis-server`` as a child process on a free loopback port: the one implementation.

The demo's throwaway Redis (``worker.throwaway_redis``), the chaos environment
(``chaos.env.redis_server``, which only swaps the binary lookup) and the Sentinel topologies all
build on :class:`RedisServer`. It lives in ``worker`` because dependencies point chaos -> worker ->
fetcher: the demo needs it and the worker package must not import the chaos suite.

It is the thing faults act on, so it offers what a nemesis needs: stop, SIGKILL, SIGSTOP and
SIGCONT, and a restart on the same port and data directory (so an AOF survives a kill).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self


class RedisNotFound(RuntimeError):
    """No ``redis-server`` on PATH; the message says how to get one."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(host: str, port: int, timeout: float, what: str) -> None:
    """Poll until ``host:port`` accepts a TCP connection; raise with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.02)
    raise TimeoutError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s ({last!r})")


def resp_ping(host: str, port: int, password: str | None = None, timeout: float = 1.0) -> bytes:
    """Send PING (after AUTH when given) in raw RESP and return the reply line.

    Raw sockets, not a client library: ``chaos`` only reaches Redis through ``fetcher``, and this
    readiness probe must not depend on the code under test.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if password is not None:
            sock.sendall(b"AUTH %s\r\n" % password.encode())
            sock.recv(256)
        sock.sendall(b"PING\r\n")
        return sock.recv(256).strip()


class RedisServer:
    """One ``redis-server`` process. Use as a context manager, or call start()/close().

    ``find_binary`` is the one thing a subclass changes: here ``PATH`` only (what a user of
    ``steadfetch demo`` has); the chaos suite also looks in the project's ``bin/`` and turns a
    missing binary into a skip. ``binary`` skips the lookup: a server found elsewhere
    (``chaos.env.binaries.valkey_server_binary``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        password: str | None = None,
        extra_args: list[str] | None = None,
        dir_prefix: str = "steadfetch-redis-",
        binary: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password
        self.extra_args = list(extra_args or [])
        #: A given server binary (e.g. a valkey-server that has WAITAOF) instead of the lookup.
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix=f"{dir_prefix}{self.port}-"))
        self.log_path = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def find_binary(self) -> str:
        """The ``redis-server`` to run: the first on ``PATH``."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisNotFound(
                "no redis-server on PATH: install it (apt-get install redis-server) or pass "
                "--redis-url to use a running Redis"
            )
        return binary

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.host}:{self.port} {state}>"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The argv that starts this server (a Sentinel overrides it with its config file)."""
        args = [
            self.binary or self.find_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> Self:
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited: {self._log_tail()}")
            try:
                reply = resp_ping(self.host, self.port, self.password)
                if reply == b"+PONG":
                    return
                last = reply.decode(errors="replace")
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on {self.port} not ready in {timeout} s: {last}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (Redis flushes its AOF on a clean shutdown)."""
        self._signal_and_reap(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush beyond what ``appendfsync always`` already wrote."""
        self._signal_and_reap(signal.SIGKILL, 10.0)

    def pause(self) -> None:
        """SIGSTOP: sockets stay open and the kernel still accepts connections; nothing answers."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            assert self._proc is not None
            os.kill(self._proc.pid, signal.SIGCONT)

    def ensure_running(self) -> None:
        """Start the server again if it was stopped or killed (a nemesis' heal)."""
        if not self.running:
            self.start()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or SIGKILL) and start again on the same port and data directory."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop whatever state the process is in (a paused one is resumed first) and clean up."""
        if self._proc is not None and self._proc.poll() is None:
            self.resume()
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _signal_and_reap(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        if sig != signal.SIGKILL:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
