"""Pure aggregation of the peers benchmark: medians with min-max, the ratio headline, the table.

A repetition is a dict: ``{"peer", "ok", "error", <metric>: float | None, ...}``. Only
repetitions that passed verification (``ok``) enter the figures; failed ones are counted and
their errors kept, so a peer that lost jobs is shown as failed, never as fast.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# metric key -> (column title, format, higher is better)
DRAIN_METRICS: dict[str, tuple[str, str, bool]] = {
    "drain_jobs_per_s": ("drain jobs/s", "{:,.0f}", True),
    "steady_jobs_per_s": ("after start jobs/s", "{:,.0f}", True),
    "enqueue_jobs_per_s": ("enqueue jobs/s", "{:,.0f}", True),
    "peak_rss_mib": ("peak RSS MiB", "{:,.1f}", False),
    "peak_pss_mib": ("peak PSS MiB", "{:,.1f}", False),
    "worker_cpu_us_per_job": ("worker CPU µs/job", "{:,.1f}", False),
    "redis_cpu_us_per_job": ("Redis CPU µs/job", "{:,.1f}", False),
}
HEADLINE = "drain_jobs_per_s"
OURS = "steadfetch"


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """``{"median", "min", "max", "n"}`` of ``values``, or None when there are none."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def aggregate(reps: Iterable[Mapping[str, Any]], metrics: Iterable[str] = DRAIN_METRICS,
              ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per peer (in first-seen order): a summary per metric over its verified repetitions, plus
    ``runs``, ``failed`` and the ``errors`` of the failed ones."""
    wanted = list(metrics)
    out: dict[str, dict[str, Any]] = {}
    for rep in reps:
        peer = out.setdefault(rep["peer"], {"runs": 0, "failed": 0, "errors": [], "_v": {}})
        peer["runs"] += 1
        if not rep.get("ok"):
            peer["failed"] += 1
            peer["errors"].append(rep.get("error") or "failed")
            continue
        for key in wanted:
            value = rep.get(key)
            if value is not None:
                peer["_v"].setdefault(key, []).append(float(value))
    for peer in out.values():
        values = peer.pop("_v")
        for key in wanted:
            peer[key] = summarize(values.get(key, []))
    return out


def fastest_peer(agg: Mapping[str, Mapping[str, Any]], metric: str = HEADLINE,
                 skip: tuple[str, ...] = ()) -> str | None:  # fmt: skip
    """The peer (not steadfetch, nor one whose name starts with ``skip``) with the best median
    of ``metric``, among verified runs."""
    best: tuple[float, str] | None = None
    for name, peer in agg.items():
        summary = peer.get(metric)
        if name.startswith((OURS, *skip)) or summary is None:
            continue
        if best is None or summary["median"] > best[0]:
            best = (summary["median"], name)
    return best[1] if best else None


def ratios(agg: Mapping[str, Mapping[str, Any]], metric: str = HEADLINE,
           against: str | None = None) -> dict[str, float]:  # fmt: skip
    """steadfetch's median over the fastest peer's (or ``against``'s), per steadfetch mode."""
    ref_name = against or fastest_peer(agg, metric)
    ref = agg.get(ref_name or "", {}).get(metric)
    if ref is None or ref["median"] <= 0:
        return {}
    return {
        name: peer[metric]["median"] / ref["median"]
        for name, peer in agg.items()
        if name.startswith(OURS) and peer.get(metric) is not None
    }


def cell(summary: Mapping[str, float] | None, fmt: str) -> str:
    """``median (min-max)``, the median alone for one run, ``-`` for none."""
    if summary is None:
        return "-"
    text = fmt.format(summary["median"])
    if summary["n"] > 1:
        text += f" ({fmt.format(summary['min'])}-{fmt.format(summary['max'])})"
    return text


def table(agg: Mapping[str, Mapping[str, Any]],
          metrics: Mapping[str, tuple[str, str, bool]] = DRAIN_METRICS) -> str:  # fmt: skip
    """A plain-text table: one row per peer, medians (min-max), and a ratio headline below."""
    header = ["peer", *(title for title, _, _ in metrics.values()), "runs"]
    rows = [header]
    for name, peer in agg.items():
        runs = f"{peer['runs'] - peer['failed']}/{peer['runs']} ok"
        rows.append([name, *(cell(peer.get(k), fmt) for k, (_, fmt, _) in metrics.items()), runs])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    for name, peer in agg.items():
        for error in peer["errors"]:
            lines.append(f"FAILED {name}: {error}")
    headline = next(iter(metrics))
    if not metrics[headline][2]:  # a "lower is better" headline has no "fastest" to compare to
        return "\n".join(lines)
    for label, found in headline_ratios(agg, headline).items():
        for name, ratio in found["ratios"].items():
            lines.append(f"{name} / {label} ({found['against']}) on {metrics[headline][0]}: "
                         f"{ratio:.1f}x")  # fmt: skip
    return "\n".join(lines)


def headline_ratios(agg: Mapping[str, Mapping[str, Any]], metric: str = HEADLINE,
                    ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """steadfetch against what the targets name: the fastest peer, the fastest Python peer and
    Sidekiq with reliable fetch (each once, when it has verified runs)."""
    references = {"fastest peer": fastest_peer(agg, metric),
                  "fastest Python peer": fastest_peer(agg, metric, skip=("sidekiq",)),
                  "Sidekiq reliable fetch": "sidekiq-reliable"}  # fmt: skip
    found: dict[str, dict[str, Any]] = {}
    for label, ref in references.items():
        if ref is None or any(f["against"] == ref for f in found.values()):
            continue
        if against := ratios(agg, metric, against=ref):
            found[label] = {"against": ref, "ratios": against}
    return found
