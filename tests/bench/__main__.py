"""Run the benchmarks: ``python -m tests.bench [NAME ...]`` (``scripts/dev bench``).

Each ``bench_*.py`` module here has a ``main(argv) -> None`` that starts its own redis-server,
prints its figures and stops. Benchmarks print numbers; they never assert speed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench as package


def main() -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    # Names come first; everything from the first option on belongs to the benchmarks
    # (so ``peers --jobs 2000`` does not take 2000 for a name).
    wanted: list[str] = []
    for arg in sys.argv[1:]:
        if arg.startswith("-"):
            break
        wanted.append(arg)
    wanted = wanted or names
    unknown = [w for w in wanted if w not in names and f"bench_{w}" not in names]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {', '.join(names)}")
    for name in names:
        if name in wanted or name.removeprefix("bench_") in wanted:
            print(f"== {name}", flush=True)
            importlib.import_module(f"tests.bench.{name}").main(sys.argv[1:])


if __name__ == "__main__":
    main()
