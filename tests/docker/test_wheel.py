"""The wheel carries what production needs and nothing the tests need (issue 10 §1).

Built from the working tree by ``docker/build-worker-image.sh wheels`` (the same wheel the image
installs), then installed without extras into a fresh virtualenv from the wheelhouse only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

#: Test-only modules that used to ship inside the packages.
TEST_ONLY = (
    "steadfetch/chaos/fixtures.py",
    "steadfetch/worker/dashboard/samples.py",
    "steadfetch/worker/dashboard/screenshots.py",
)
#: What only `steadfetch[chaos]` may pull in.
CHAOS_ONLY = ("testcontainers", "toxiproxy-python", "docker", "requests")


def the_wheel(wheelhouse: Path) -> Path:
    (wheel,) = wheelhouse.glob("steadfetch-*.whl")
    return wheel


def imports_of(source: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``source`` (not only at the top)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_wheel_holds_no_test_code(wheelhouse: Path) -> None:
    with zipfile.ZipFile(the_wheel(wheelhouse)) as wheel:
        names = wheel.namelist()
        modules = {name: wheel.read(name).decode() for name in names if name.endswith(".py")}
        metadata = Parser().parsestr(
            wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    # One import name (issue 10 §2): everything beneath steadfetch/, the parts and the Lua.
    assert {name.split("/")[0] for name in modules} == {"steadfetch"}
    assert {name.split("/")[1] for name in modules} == {
        "__init__.py", "fetcher", "worker", "chaos",
    }  # fmt: skip
    assert any(name.startswith("steadfetch/fetcher/lua/") for name in names)
    assert not [name for name in TEST_ONLY if name in names]
    importing_pytest = [name for name, src in modules.items() if "pytest" in imports_of(src)]
    assert importing_pytest == []
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert metadata["License-Expression"] == "MIT"
    assert "chaos" in metadata.get_all("Provides-Extra")
    for requirement in metadata.get_all("Requires-Dist"):
        if requirement.split(">")[0].split("[")[0].strip() in CHAOS_ONLY:
            assert 'extra == "chaos"' in requirement, requirement


def test_plain_install_runs_without_extras(wheelhouse: Path, tmp_path: Path) -> None:
    """`pip install steadfetch` (no extras) into a fresh venv: the CLI starts; no chaos deps."""
    venv = tmp_path / "venv"
    # No pip inside (ensurepip is the slow part): this pip installs into that venv's python.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
    subprocess.run(
        [*pip, "install", "-q", "--no-index", "--find-links", str(wheelhouse / "deps"),
         str(the_wheel(wheelhouse))],
        check=True, timeout=300,
    )  # fmt: skip
    installed = subprocess.run(
        [*pip, "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    assert "steadfetch==" in installed and "redis==" in installed  # that venv's listing
    assert not [name for name in (*CHAOS_ONLY, "pytest") if f"\n{name}==" in f"\n{installed}"]
    cli = subprocess.run(
        [str(venv / "bin" / "steadfetch"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0, cli.stderr
    assert "usage: steadfetch" in cli.stdout
    assert "Traceback" not in cli.stderr
