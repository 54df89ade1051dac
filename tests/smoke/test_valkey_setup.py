"""``scripts/dev valkey`` (the valkey-server step of ``scripts/dev setup``) and the lookup of the
binary it installs: a download that fails or does not hash to the pinned sha256 installs
nothing and says why; a cached .deb is extracted without the network; a binary that is there but
cannot run (its libraries missing) is a missing component naming the reason.

Each setup run is the real script on a copy of it in a temporary directory (its ``bin/`` and
``.artifacts/`` are that directory's), against a mirror served here or an unreachable one.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.binaries import (
    PROJECT_ROOT,
    ComponentMissing,
    valkey_server_binary,
)
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.worker.redis_server import free_port
from tests.fixtures import require

DEV = PROJECT_ROOT / "scripts" / "dev"
PINNED = re.search(r'^VALKEY_VERSION="(.+)"$', DEV.read_text(), re.M)
assert PINNED is not None
DEB = f"valkey-tools_{PINNED.group(1)}_amd64.deb"


def setup_valkey(root: Path, mirror: str) -> subprocess.CompletedProcess[str]:
    """``scripts/dev valkey`` as a copy under ``root``, with ``mirror`` as the Debian mirror."""
    (root / "scripts").mkdir(exist_ok=True)
    shutil.copy(DEV, root / "scripts" / "dev")
    env = {**os.environ, "STEADFETCH_DEBIAN_MIRROR": mirror}
    return subprocess.run(
        ["bash", str(root / "scripts" / "dev"), "valkey"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a directory laid out like a Debian mirror."""
    served = tmp_path / "mirror"
    (served / "pool" / "main" / "v" / "valkey").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_download_that_is_not_the_pinned_file_installs_nothing(
    tmp_path: Path, mirror: tuple[str, Path]
) -> None:
    url, served = mirror
    (served / "pool" / "main" / "v" / "valkey" / DEB).write_bytes(b"not the pinned package")
    root = tmp_path / "checkout"
    root.mkdir()
    done = setup_valkey(root, url)
    assert done.returncode == 1
    assert "sha256 is not the pinned" in done.stderr and "valkey.log" in done.stderr
    assert not (root / "bin" / "valkey-server").exists()
    assert not list((root / ".artifacts").glob("*.deb*"))  # nothing half-written is kept


def test_an_unreachable_mirror_is_said_and_installs_nothing(tmp_path: Path) -> None:
    done = setup_valkey(tmp_path, f"http://127.0.0.1:{free_port()}/debian")
    assert done.returncode == 1
    said = r"MISSING.*download of http://127\.0\.0\.1:\d+/debian/pool/.* failed"
    assert re.search(said, done.stderr)
    assert not (tmp_path / "bin" / "valkey-server").exists()


def test_a_cached_package_is_extracted_without_the_network(tmp_path: Path) -> None:
    cached = PROJECT_ROOT / ".artifacts" / DEB

    def from_setup() -> Path:
        if not cached.is_file():
            raise ComponentMissing(f"{cached} is not there: run `scripts/dev setup` first")
        return cached

    (tmp_path / ".artifacts").mkdir()
    shutil.copy(require(from_setup), tmp_path / ".artifacts" / DEB)
    done = setup_valkey(tmp_path, f"http://127.0.0.1:{free_port()}/debian")
    assert done.returncode == 0, done.stderr
    version = subprocess.run(
        [str(tmp_path / "bin" / "valkey-server"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("Valkey server v=8.0.1")
    again = setup_valkey(tmp_path, "http://127.0.0.1:1/unused")  # installed: nothing to do
    assert again.returncode == 0 and again.stderr == ""


def test_a_valkey_binary_that_cannot_run_is_missing_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a fresh machine without Debian's redis-server libraries shows (the loader's words)."""
    fake = tmp_path / "valkey-server"
    fake.write_text(
        "#!/bin/sh\necho 'valkey-server: error while loading shared libraries: libjemalloc.so.2:"
        " cannot open shared object file: No such file or directory' >&2\nexit 127\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("STEADFETCH_VALKEY_SERVER", str(fake))
    with pytest.raises(ComponentMissing, match=r"does not run: .*libjemalloc\.so\.2.*apt-get"):
        valkey_server_binary()
    monkeypatch.setenv("STEADFETCH_VALKEY_SERVER", str(tmp_path / "absent"))
    with pytest.raises(ComponentMissing, match="is not an executable file"):
        valkey_server_binary()


def test_the_installed_valkey_is_real_and_has_waitaof() -> None:
    with RedisServer(binary=require(valkey_server_binary), appendonly=True) as server:
        client = redis.Redis(port=server.port, socket_timeout=5.0)
        try:
            assert client.info("server")["server_name"] == "valkey"
            assert client.execute_command("WAITAOF", 1, 0, 1000) == [1, 0]
        finally:
            client.close()
