"""Every function named in worker/worker.py's "one job's path" exists (the list stays true)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import steadfetch.worker.worker  # noqa: F401 (binds worker.worker)
from steadfetch import worker

ROOT = Path(worker.worker.__file__).resolve().parents[1]
NAME = re.compile(r"\b(?:fetcher|worker)(?:\.[A-Za-z_]\w*)+")
SCRIPT = re.compile(r"\bfetcher/lua/\w+\.lua\b")


def path_section() -> str:
    doc = worker.worker.__doc__ or ""
    return doc[doc.index("One job's path") :]


def resolve(dotted: str) -> object:
    """Import the longest importable module prefix, then follow attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(dotted)


def test_every_name_in_the_job_path_exists() -> None:
    names = set(NAME.findall(path_section()))
    assert len(names) > 20  # the list was found and parsed
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, f"names in worker/worker.py's job path that do not exist: {missing}"


def test_every_script_in_the_job_path_exists() -> None:
    scripts = SCRIPT.findall(path_section())
    assert scripts
    assert all((ROOT / script).is_file() for script in scripts), scripts
