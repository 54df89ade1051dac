"""One virtualenv per Python peer, at pinned versions, under ``.artifacts/peers/`` (reused).

A peer's venv is rebuilt only when its pin list changes (a stamp file holds the pins it was built
from), so repeated benchmark runs cost nothing here. ``pip freeze`` of each venv goes into the
results, so the JSON says exactly what ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from steadfetch.chaos.env.binaries import PROJECT_ROOT, ComponentMissing

CACHE = PROJECT_ROOT / ".artifacts" / "peers"
INSTALL_TIMEOUT = 600.0

# venv name -> pinned requirements. rq's two workers share one venv, Celery's two pools too.
PINS: dict[str, tuple[str, ...]] = {
    "arq": ("arq==0.28.0",),
    # saq imports typing_extensions without requiring it
    "saq": ("saq[redis]==0.26.4", "typing-extensions==4.15.0"),
    "rq": ("rq==2.12.0",),
    "taskiq": ("taskiq==0.13.0", "taskiq-redis==1.2.4"),
    "dramatiq": ("dramatiq[redis]==2.2.1",),
    "celery": ("celery[redis]==5.7.0",),
    "plot": ("matplotlib==3.10.9",),  # not a peer: draws the RSS/throughput PNGs
}


SIDEKIQ_PACKAGES = ("ruby-sidekiq", "ruby-gitlab-sidekiq-fetcher")  # Sidekiq 6.4.1, Ruby 3.1


class VenvError(RuntimeError):
    """A peer's virtualenv could not be created (pip's last lines say why)."""


def python(name: str) -> Path:
    return CACHE / name / "bin" / "python"


def ensure(name: str) -> Path:
    """The interpreter of peer ``name``'s venv, creating or refreshing the venv when needed."""
    pins = PINS[name]
    root = CACHE / name
    stamp = root / ".pins"
    want = "\n".join(pins)
    if python(name).exists() and stamp.exists() and stamp.read_text() == want:
        return python(name)
    print(f"  creating venv {root} ({', '.join(pins)})", flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", "--clear", str(root)])
    _run([str(python(name)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins])
    stamp.write_text(want)
    return python(name)


def freeze(name: str) -> dict[str, str]:
    """``{package: version}`` installed in peer ``name``'s venv."""
    out = subprocess.run(
        [str(python(name)), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
    return {k: v for k, v in pairs}


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=True)
    except subprocess.CalledProcessError as exc:
        tail = " | ".join((exc.stderr or exc.stdout or "").strip().splitlines()[-5:])
        raise VenvError(f"{' '.join(cmd[:4])}... failed (exit {exc.returncode}): {tail}") from exc
    except subprocess.TimeoutExpired as exc:
        raise VenvError(f"{' '.join(cmd[:4])}... took over {INSTALL_TIMEOUT:.0f} s") from exc


def ensure_sidekiq() -> None:
    """Sidekiq and GitLab's reliable fetcher from Debian's packages, installed when missing
    (as root with apt-get, like ``scripts/dev setup`` does for its components)."""
    if all(_debian_installed(p) for p in SIDEKIQ_PACKAGES) and shutil.which("sidekiq"):
        return
    hint = f"apt-get install -y {' '.join(SIDEKIQ_PACKAGES)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ComponentMissing(f"Sidekiq is not installed: run `{hint}`")
    print(f"  {hint}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *SIDEKIQ_PACKAGES]
    if subprocess.run(install, capture_output=True, timeout=INSTALL_TIMEOUT, env=env).returncode:
        _run(["apt-get", "update", "-qq"])  # a fresh machine has no package lists yet
        _run(install)


def _debian_installed(package: str) -> bool:
    query = ["dpkg-query", "-W", "-f", "${Status}", package]
    done = subprocess.run(query, capture_output=True, text=True, timeout=30)
    return done.stdout.endswith("installed") and "not-installed" not in done.stdout
