"""The pure and process-handling parts of the peers benchmark (the benchmark itself never runs
in the test suite: it only prints figures)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tests.bench.bench_peers import Series, _first_line, _latencies
from tests.bench.peers import procs, results
from tests.bench.peers.peers import APPS, PEERS, select

sys.path.insert(0, str(APPS))
import bench_common


def rep(peer: str, ok: bool = True, **metrics: float) -> dict[str, object]:
    return {"peer": peer, "ok": ok, "error": None if ok else "3 missing", **metrics}


REPS = [
    rep("arq", drain_jobs_per_s=400.0, peak_rss_mib=30.0),
    rep("arq", drain_jobs_per_s=500.0, peak_rss_mib=31.0),
    rep("arq", drain_jobs_per_s=450.0, peak_rss_mib=32.0),
    rep("sidekiq-basic", drain_jobs_per_s=5000.0),
    rep("sidekiq-basic", ok=False, drain_jobs_per_s=90_000.0),  # failed: must not count
    rep("sidekiq-reliable", drain_jobs_per_s=2000.0),
    rep("steadfetch-reliable", drain_jobs_per_s=20_000.0),
    rep("steadfetch-fast", drain_jobs_per_s=30_000.0),
]


def test_summary_is_median_with_min_and_max() -> None:
    assert results.summarize([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0,
                                                        "n": 4}  # fmt: skip
    assert results.summarize([]) is None


def test_failed_repetitions_are_counted_not_measured() -> None:
    agg = results.aggregate(REPS)
    assert agg["arq"]["drain_jobs_per_s"]["median"] == 450.0
    assert agg["arq"]["runs"] == 3 and agg["arq"]["failed"] == 0
    sidekiq = agg["sidekiq-basic"]
    assert sidekiq["drain_jobs_per_s"] == {"median": 5000.0, "min": 5000.0, "max": 5000.0, "n": 1}
    assert (sidekiq["runs"], sidekiq["failed"], sidekiq["errors"]) == (2, 1, ["3 missing"])
    assert agg["sidekiq-basic"]["peak_rss_mib"] is None


def test_ratio_is_against_the_fastest_peer_never_steadfetch_itself() -> None:
    agg = results.aggregate(REPS)
    assert results.fastest_peer(agg) == "sidekiq-basic"
    assert results.ratios(agg) == {"steadfetch-reliable": 4.0, "steadfetch-fast": 6.0}
    assert results.fastest_peer(agg, skip=("sidekiq",)) == "arq"
    assert results.ratios(agg, against="arq") == pytest.approx(
        {"steadfetch-reliable": 20_000 / 450, "steadfetch-fast": 30_000 / 450}
    )
    assert results.ratios(results.aggregate(REPS[6:])) == {}  # no peer: no ratio


def test_table_shows_ranges_failures_and_ratios() -> None:
    text = results.table(results.aggregate(REPS))
    assert "450 (400-500)" in text
    assert "FAILED sidekiq-basic: 3 missing" in text
    assert "1/2 ok" in text
    assert "steadfetch-fast / fastest peer (sidekiq-basic) on drain jobs/s: 6.0x" in text
    assert "steadfetch-fast / fastest Python peer (arq) on drain jobs/s: 66.7x" in text
    assert "steadfetch-reliable / Sidekiq reliable fetch (sidekiq-reliable) on drain" in text
    lower_is_better = {"recovery_s": ("recovery s", "{:.2f}", False)}
    assert "fastest" not in results.table(results.aggregate(REPS, lower_is_better),
                                          lower_is_better)  # fmt: skip


def test_peer_selection_by_name_and_prefix() -> None:
    assert [p.name for p in select("rq,arq")] == ["rq-simple", "rq-fork", "arq"]
    assert len(select(None)) == len(PEERS)
    with pytest.raises(SystemExit, match="unknown peer 'nope'"):
        select("nope")


def test_counter_bookkeeping_reports_the_missing_by_count() -> None:
    processed = [0]

    async def counts() -> tuple[int, int]:
        return processed[0], 0

    async def scenario() -> list[list[str]]:
        bench_common._total[0] = 10
        check = bench_common.by_count(counts)
        pending = [f"b{i}" for i in range(10)]
        seen = []
        for done in (4, 8, 9, 10):
            processed[0] = done
            pending, _ = await check(pending)
            seen.append(pending)
        return seen

    assert asyncio.run(scenario()) == [[f"b{i}" for i in range(4, 10)], ["b8", "b9"], ["b9"], []]


def test_record_bookkeeping_counts_each_failure_once() -> None:
    async def scenario() -> list[tuple[list[str], int]]:
        state = {"b0": True, "b1": False, "b2": None}
        check = bench_common.by_record(lambda ids: [state[i] for i in ids])
        first = await check(["b0", "b1", "b2"])
        state["b2"] = True
        return [first, await check(first[0])]

    assert asyncio.run(scenario()) == [(["b2"], 1), ([], 1)]


def test_children_are_measured_as_a_tree_and_all_stopped(tmp_path: Path) -> None:
    """A child that forks: its tree is sampled, and leaving the block ends every process in it,
    even when the block raised."""
    script = "sleep 30 & sleep 30 & echo started; wait"
    with pytest.raises(RuntimeError, match="boom"), procs.Children() as kids:
        child = kids.start("forker", ["sh", "-c", script], env=dict(os.environ), cwd=tmp_path,
                           pipes=True)  # fmt: skip
        assert child.read_line(10) == b"started\n"
        deadline = time.monotonic() + 10
        while len(pids := procs.tree(child.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pids) == 3
        rss, cpu = procs.sample(child.pid)
        assert rss > 0 and cpu >= 0
        assert 0 < procs.pss(child.pid) <= rss
        raise RuntimeError("boom")
    assert not child.alive
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid


def _zombie(pid: int) -> bool:
    fields = procs._stat_fields(pid)
    return fields is None or fields[0] == "Z"


def test_series_stays_bounded_over_a_long_run() -> None:
    series = Series(every=0.25)
    for i in range(200_000):  # 50 000 s of samples every 0.25 s
        series.add(i * 0.25, 2**20, 1_000_000 - i)
    assert len(series.points) < Series.MAX
    assert series.points[0] == (0.0, 1.0, 1_000_000)
    times = [p[0] for p in series.points]
    assert times == sorted(times) and times[-1] > 49_000


def test_idle_latency_leaves_out_the_warm_up_second() -> None:
    accepted = {"r0": 100.0, "r1": 101.95, "r2": 102.0, "r3": 103.0}
    runs = {"r0": [100.9], "r1": [101.952], "r2": [102.004, 102.5], "r3": [103.001]}
    found = _latencies(accepted, runs)
    assert found["samples"] == 3  # r0 was enqueued before the worker's first run + 1 s
    assert found["latency_p50_ms"] == pytest.approx(2.0)
    assert found["latency_p99_ms"] == pytest.approx(4.0)  # the first run of r2 counts
    assert _latencies(accepted, {})["samples"] == 0


def test_outage_line_of_a_traceback_names_the_exception(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("booted\n\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
                   "    raise\nredis.exceptions.ConnectionError: Connection refused\n")  # fmt: skip
    assert _first_line(log, len("booted\n")) == (
        "Traceback (most recent call last): ... redis.exceptions.ConnectionError: Connection "
        "refused"
    )
    assert _first_line(log, 0) == "booted"
    assert _first_line(log, log.stat().st_size) is None
