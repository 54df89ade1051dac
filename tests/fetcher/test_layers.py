"""The fetcher's two layers (fetcher/__init__.py): stated in every module, imports one way."""

from __future__ import annotations

import ast
from pathlib import Path

from steadfetch import fetcher

PACKAGE = Path(fetcher.__file__).parent
PREFIX = "steadfetch.fetcher."
CONNECTION_LAYER = {
    "connection", "retry", "failures", "state", "cancellation", "url", "errors", "durability",
}  # fmt: skip
QUEUE_PROTOCOL = {
    "fetch", "adoption", "settle", "registry", "scheduling", "scripts", "deadletter", "codec",
    "producer", "admin", "keys", "job", "unique", "cluster",
}  # fmt: skip


def fetcher_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            found.add(node.module.split(".")[2])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith(PREFIX)}
    return found


def test_every_module_is_in_one_layer_and_says_so() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == CONNECTION_LAYER | QUEUE_PROTOCOL
    for name in modules:
        doc = ast.get_docstring(ast.parse((PACKAGE / f"{name}.py").read_text())) or ""
        layer = "Connection layer." if name in CONNECTION_LAYER else "Queue protocol."
        assert doc.startswith(layer), f"fetcher/{name}.py: docstring must start with {layer!r}"
        assert name in (fetcher.__doc__ or ""), f"fetcher/{name}.py missing from the package doc"


def test_the_connection_layer_never_imports_the_queue_protocol() -> None:
    for name in CONNECTION_LAYER:
        assert not fetcher_imports(name) & QUEUE_PROTOCOL, f"fetcher/{name}.py reaches up"
