"""Draw a drain run's RSS and throughput over time: ``python plot.py results.json OUT_DIR``.

Run with the ``plot`` venv's interpreter (matplotlib lives there, not in the project). Writes
``drain.png``: one line per peer (its first verified repetition), RSS of the worker's process
tree on top, jobs taken from the queue per second (over 1 s windows, log scale) below.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def rates(points: list[list[float]], window: float = 1.0) -> tuple[list[float], list[float]]:
    """Jobs leaving the queue per second, from the queue depth, over ``window``-second steps."""
    xs, ys, last = [], [], None
    for t, _, queued in points:
        if last is None:
            last = (t, queued)
        elif t - last[0] >= window:
            xs.append(t)
            ys.append(max(0.0, (last[1] - queued) / (t - last[0])))
            last = (t, queued)
    return xs, ys


def main(results: Path, out: Path) -> None:
    doc = json.loads(results.read_text())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    seen = set()
    for rep in doc["repetitions"]:
        if not rep.get("ok") or rep["peer"] in seen or not rep.get("series"):
            continue
        seen.add(rep["peer"])
        points = rep["series"]
        top.plot([p[0] for p in points], [p[1] for p in points], label=rep["peer"])
        xs, ys = rates(points)
        bottom.plot(xs, ys, label=rep["peer"])
    top.set_ylabel("RSS of the worker's process tree (MiB)")
    bottom.set_ylabel("jobs taken from the queue per s")
    bottom.set_yscale("symlog", linthresh=10)
    bottom.set_ylim(bottom=0)  # from 0, so that decade ticks show even for one fast peer
    bottom.set_xlabel("seconds since the worker started")
    options, cores = doc["options"], doc["machine"]["cores"]
    jobs = f"{options['jobs']:,} no-op jobs"
    if options.get("jobs_for"):  # slow peers drain fewer (--jobs-for): say so, not one N
        jobs += f" ({', '.join(f'{k} {v:,}' for k, v in options['jobs_for'].items())})"
    top.set_title(f"{doc['date']}: drain of {jobs}, {cores} cores, "
                  f"latency {options['latency_ms']} ms", fontsize="small", wrap=True)  # fmt: skip
    top.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(out / "drain.png", dpi=100)
    print(f"plot: {out / 'drain.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
