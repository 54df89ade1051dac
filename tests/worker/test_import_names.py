"""One import name, ``steadfetch`` (issue 10 §2): a user's modules cannot shadow steadfetch's.

The folders ``fetcher/``, ``worker/`` and ``chaos/`` install as ``steadfetch.fetcher`` and so on
(``pyproject.toml``); before, they were the import names themselves, and a project with its own
``worker.py`` (``steadfetch run worker:app`` puts the current directory on ``sys.path``) or
``fetcher.py`` could not use steadfetch at all.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import steadfetch
from steadfetch import fetcher, worker
from steadfetch.chaos.env.redis_server import RedisServer
from tests.worker.harness import ROOT, STEADFETCH, wait_for

OLD_NAMES = ("fetcher", "worker", "chaos")

USER_WORKER = """\
from pathlib import Path

from steadfetch import App

app = App()


@app.task()
def mark(n: int) -> None:
    Path(f"done-{n}").write_text("done")
"""
#: What a user's own modules of the old names might hold: anything but steadfetch.
USER_JUNK = 'raise ImportError("the project\'s own {name}.py was imported by steadfetch")\n'
USER_ENQUEUE = """\
import sys

from steadfetch import SyncProducer

with SyncProducer(sys.argv[1]) as producer:
    producer.enqueue("mark", 1)
    producer.enqueue("mark", 2, queue="default")
"""


def test_a_project_with_its_own_worker_fetcher_and_chaos_modules_runs_and_enqueues(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "worker.py").write_text(USER_WORKER)
    for name in ("fetcher", "chaos"):
        (project / f"{name}.py").write_text(USER_JUNK.format(name=name))
    (project / "enqueue.py").write_text(USER_ENQUEUE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADFETCH_")}
    env.pop("PYTHONPATH", None)
    env["STEADFETCH_REDIS_URL"] = redis_server.url
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(STEADFETCH), "run", "worker:app", "--concurrency", "2"],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for("the worker started", lambda: "started:" in log.read_text() or proc.poll())
        assert proc.poll() is None, log.read_text()
        # A script in the project (its directory first on sys.path) enqueues through the API.
        enqueued = subprocess.run(
            [sys.executable, "enqueue.py", redis_server.url],
            cwd=project, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert enqueued.returncode == 0, enqueued.stderr
        done = [project / "done-1", project / "done-2"]
        wait_for("both jobs done", lambda: all(path.exists() for path in done))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert "processed=2" in text, text
    assert "ImportError" not in text and "Traceback" not in text, text


def test_steadfetch_never_imports_a_bare_part_name() -> None:
    """Every import of a part goes through ``steadfetch.``, in the product and in the tests and
    examples: a ``worker.py`` beside any of them must not be picked up instead."""
    folders = ("steadfetch", *OLD_NAMES, "tests", "docker", "scripts")
    bare = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                bare += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name.split(".")[0] in OLD_NAMES
                ]
    assert bare == []


def test_every_part_and_subpackage_is_installed_under_steadfetch() -> None:
    """setuptools cannot find packages under a prefix, so pyproject.toml lists them: a new
    folder with an ``__init__.py`` that is not listed would be missing from the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("steadfetch", *init.parent.relative_to(ROOT).parts))
        for name in OLD_NAMES
        for init in (ROOT / name).rglob("__init__.py")
    }
    assert set(config["packages"]) == {"steadfetch", *folders}
    assert config["package-dir"] == {
        "steadfetch": "steadfetch", **{f"steadfetch.{name}": name for name in OLD_NAMES}
    }  # fmt: skip
    # mypy's view of the same layout (pyproject.toml [tool.mypy]).
    tree = ROOT / ".typecheck" / "steadfetch"
    assert (tree / "__init__.py").resolve() == ROOT / "steadfetch" / "__init__.py"
    for name in OLD_NAMES:
        assert (tree / name).resolve() == ROOT / name


def test_the_public_api_is_the_fetchers_and_the_workers() -> None:
    assert sorted(steadfetch.__all__) == sorted({*fetcher.__all__, *worker.__all__})
    for name in steadfetch.__all__:
        part = fetcher if name in fetcher.__all__ else worker
        assert getattr(steadfetch, name) is getattr(part, name)
