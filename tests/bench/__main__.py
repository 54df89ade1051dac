"""Run the benchmarks: ``python -m tests.bench [NAME ...] [OPTIONS]`` (``scripts/dev bench``).

Without a name every benchmark runs except ``peers``, which runs only when named.

Each ``bench_*.py`` module here has a ``main(argv) -> None`` that starts its own redis-server,
prints its figures and stops. Benchmarks print numbers; they never assert speed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import tests.bench as package

# Run only when named: ``bench peers`` installs and runs a dozen other workers (many minutes).
ON_REQUEST = {"bench_peers", "bench_durability"}


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
    wanted = wanted or [n for n in names if n not in ON_REQUEST]
    unknown = [w for w in wanted if w not in names and f"bench_{w}" not in names]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {', '.join(names)}")
    for name in names:
        if name in wanted or name.removeprefix("bench_") in wanted:
            print(f"== {name}", flush=True)
            importlib.import_module(f"tests.bench.{name}").main(sys.argv[1:])


if __name__ == "__main__":
    main()
