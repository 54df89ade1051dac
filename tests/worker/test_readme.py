"""The README's "Using the worker" examples, run as written against a real Redis.

The Python block that starts with a ``# path.py`` comment is written to that path in a scratch
project; the other Python blocks run there as scripts; every shell line runs with ``bash``
(``steadfetch run`` in the background until the end, then SIGTERM: it must exit 0). The one
substitution: the README's Redis URL, ``redis://127.0.0.1:6379/0``, becomes the test's. Lines
that install software (``pip``, ``python3 -m venv``) are not run: the test runs inside the
installed environment already.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.workload.process import STEADFETCH
from tests.worker.harness import ROOT, wait_for

README_URL = "redis://127.0.0.1:6379/0"
NOT_RUN = ("pip ", "python3 -m venv")


def section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in re.finditer(r"```(\w+)\n(.*?)```", text, re.S)]


def shell_lines(code: str) -> list[str]:
    lines = []
    for raw in code.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line and not line.startswith("#") and not line.startswith(NOT_RUN):
            lines.append(line)
    return lines


def test_the_readme_examples_run_as_written(redis_server: RedisServer, tmp_path: Path) -> None:
    examples = blocks(section("Using the worker"))
    assert {kind for kind, _ in examples} == {"python", "sh"}
    url = redis_server.url
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADFETCH_")}
    env["PATH"] = f"{STEADFETCH.parent}{os.pathsep}{env['PATH']}"
    scripts = []
    for kind, code in examples:
        code = code.replace(README_URL, url)
        first = code.splitlines()[0]
        if kind == "python" and re.fullmatch(r"# [\w/]+\.py", first):
            path = tmp_path / first[2:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
        else:
            scripts.append((kind, code))
    workers: list[tuple[subprocess.Popen[bytes], Path]] = []
    ran = 0
    try:
        for kind, code in scripts:
            if kind == "python":
                result = subprocess.run(
                    [sys.executable, "-c", code], cwd=tmp_path, env=env,
                    capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                assert result.returncode == 0, f"{code}\n{result.stderr}"
                ran += 1
                continue
            for line in shell_lines(code):
                if m := re.fullmatch(r"export (\w+)=(\S+)", line):
                    env[m[1]] = m[2]
                elif line.startswith("steadfetch run "):
                    log = tmp_path / f"worker-{len(workers)}.log"
                    with log.open("wb") as out:
                        proc = subprocess.Popen(
                            ["bash", "-c", f"exec {line}"], cwd=tmp_path, env=env,
                            stdout=out, stderr=subprocess.STDOUT,
                        )  # fmt: skip
                    workers.append((proc, log))
                    wait_for(f"{line} started", lambda log=log: "started:" in log.read_text())
                else:
                    result = subprocess.run(
                        ["bash", "-c", line], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=60,
                    )  # fmt: skip
                    assert result.returncode == 0, f"{line}\n{result.stderr}"
                ran += 1
        assert workers, "the README shows no steadfetch run"
        with redis.Redis(port=redis_server.port) as oracle:
            queues = ["steadfetch:queue:high", "resque:queue:stats", "steadfetch:queue:default"]
            wait_for("the queues drained", lambda: sum(oracle.llen(q) for q in queues) == 0)
            # Every job ran: none failed, none was dead-lettered (e.g. for an unknown task).
            dead = [json.loads(e) for e in oracle.lrange("steadfetch:dead", 0, -1)]
            assert dead == []
    finally:
        for proc, _log in workers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc, _log in workers]
    logs = "".join(log.read_text() for _proc, log in workers)
    assert codes == [0] * len(workers), logs
    assert "dead-lettered" not in logs and " failed:" not in logs, logs
    assert "processed=" in logs
    assert ran >= 10


def test_contracts_link_nothing_outside_the_repository() -> None:
    """A clone on its own must be complete: no ../ paths, no URLs, every linked path exists."""
    text = (ROOT / "docs" / "CONTRACTS.md").read_text()
    assert "../" not in text
    assert not re.search(r"https?://", text)
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert (ROOT / "docs" / target).exists(), target
