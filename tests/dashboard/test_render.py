"""The renderers, per state, on a recording console at 80 and 120 columns."""

from __future__ import annotations

import pytest
from rich.console import Console, RenderableType

from steadfetch.worker.dashboard import fmt
from steadfetch.worker.dashboard.render import Cluster, Link, Phase, top_view, worker_dashboard
from tests.dashboard import samples
from tests.dashboard.samples import NOW


def render(renderable: RenderableType, width: int = 80, *, color: bool = False) -> Console:
    console = Console(
        record=True, width=width, force_terminal=color, color_system="truecolor" if color else None
    )
    console.print(renderable)
    return console


def text(renderable: RenderableType, width: int = 80) -> str:
    return render(renderable, width).export_text()


def flat(out: str) -> str:
    """The words of a screen in order, without borders and line breaks (for wrapped text)."""
    for border in "│╭╮╰╯─":
        out = out.replace(border, " ")
    return " ".join(out.split())


def assert_fits(out: str, width: int) -> None:
    widest = max(len(line.rstrip()) for line in out.splitlines())
    assert widest <= width, f"a line is {widest} wide"


@pytest.mark.parametrize("width", [80, 120])
def test_connected_worker(width: int) -> None:
    out = text(worker_dashboard(samples.heartbeat(), history=samples.THROUGHPUT, now=NOW), width)
    assert_fits(out, width)
    assert "Redis: connected" in out
    assert "● connected" in out
    assert "reconnecting" not in out
    assert "12/20" in out  # in flight against the limit
    assert "153.4/s" in out
    assert fmt.sparkline(samples.THROUGHPUT, 40) in out
    assert "p50 12 ms" in out and "p99 88 ms" in out
    assert "processed 482,113" in out
    assert "RSS 81.3 MiB" in out
    assert "default 1,204" in flat(out)
    assert "scheduled" in out and "dead-letter" in out
    assert "no errors" in out
    assert "up 1h 02m" in out


@pytest.mark.parametrize("width", [80, 120])
def test_ownership_counters_failovers_and_the_primary_are_shown(width: int) -> None:
    snap = samples.heartbeat(
        recovered_jobs=3, presumed_dead=1, late_settles=2, failovers=1, primary="10.0.0.7:6379"
    )
    out = text(worker_dashboard(snap, history=samples.THROUGHPUT, now=NOW), width)
    assert_fits(out, width)
    assert "recovered 3   presumed dead 1   late settles 2" in out
    assert "10.0.0.7:6379   failovers 1" in out


@pytest.mark.parametrize("width", [80, 120])
def test_outage_shows_timer_attempt_next_wait_and_error(width: int) -> None:
    snap = samples.outage_heartbeat()
    out = text(worker_dashboard(snap, history=samples.THROUGHPUT, now=NOW), width)
    assert_fits(out, width)
    assert "Redis: outage" in out
    assert "● reconnecting" in out
    assert "down for 12 s" in out
    assert "attempt 7" in out
    # the line said "retrying in 1.6 s" 0.2 s ago: 1.4 s are left
    assert "next retry in 1.4 s" in out
    assert "ConnectionRefusedError [Errno 111] Connection refused" in flat(out)
    assert "job 4f1c" in out  # older errors stay listed
    assert "4/20" in out


def test_outage_reads_the_retry_fields_never_the_line() -> None:
    snap = samples.outage_heartbeat(retry_attempt=9, retry_next_at=NOW + 3.0)
    out = text(worker_dashboard(snap, now=NOW))
    assert "attempt 9" in out
    assert "next retry in 3.0 s" in out
    # Without the fields the figures are unknown, although the line still says "attempt 7".
    bare = samples.outage_heartbeat(retry_attempt=None, retry_next_at=None)
    out = text(worker_dashboard(bare, now=NOW))
    assert "attempt -   next retry in -" in out


def test_recovering_then_connected() -> None:
    out = text(worker_dashboard(samples.recovering_heartbeat(), now=NOW))
    assert "Redis: recovering" in out
    assert "connected again 4.0 s ago" in out
    assert "outages so far: 3" in out
    later = text(worker_dashboard(samples.recovering_heartbeat(), now=NOW + 60))
    assert "Redis: connected" in later
    assert "recovering" not in later


def test_phase_from_heartbeat_fields() -> None:
    assert Link.from_snapshot(samples.heartbeat()).phase(NOW) is Phase.CONNECTED
    assert Link.from_snapshot(samples.outage_heartbeat()).phase(NOW) is Phase.OUTAGE
    assert Link.from_snapshot(samples.recovering_heartbeat()).phase(NOW) is Phase.RECOVERING
    assert Link.from_snapshot({"connection_state": "closed"}).phase(NOW) is Phase.CLOSED
    assert Link.from_snapshot({}).phase(NOW) is Phase.UNKNOWN


def test_missing_keys_render_as_dashes() -> None:
    out = text(worker_dashboard({"worker_id": "w1"}, now=NOW))
    assert "w1" in out
    assert "-/-" in out
    assert "RSS -" in out


def test_outage_is_red_and_connected_is_green() -> None:
    outage = render(worker_dashboard(samples.outage_heartbeat(), now=NOW), color=True)
    assert "\x1b[1;31m● reconnecting" in outage.export_text(styles=True)
    ok = render(worker_dashboard(samples.heartbeat(), now=NOW), color=True)
    assert "\x1b[32m● connected" in ok.export_text(styles=True)


@pytest.mark.parametrize("width", [80, 120])
def test_top_connected_highlights_stale_worker(width: int) -> None:
    console = render(top_view(samples.cluster(), samples.top_link(), now=NOW), width, color=True)
    out = console.export_text(clear=False)
    assert_fits(out, width)
    assert "3 workers" in out
    assert "Redis: outage" not in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "40 s STALE" in rows["batch-1-311"]
    assert "STALE" not in rows["web-1-8123"]
    assert "153.4/s" in rows["web-1-8123"]
    assert "20/20" in rows["web-2-9001"]
    assert "job 4f1c" in rows["batch-1-311"]
    styled = console.export_text(styles=True)
    stale_row = next(line for line in styled.splitlines() if "batch-1-311" in line)
    assert "\x1b[31m" in stale_row  # the whole row is red
    fresh_row = next(line for line in styled.splitlines() if "web-1-8123" in line)
    assert "\x1b[31m" not in fresh_row
    assert "1,204" in rows["default"]
    assert rows["processing"].split()[1] == "33"
    assert rows["scheduled"].split()[1] == "17"
    assert rows["dead-letter"].split()[1] == "8"


def test_top_fresh_workers_are_not_stale() -> None:
    out = text(top_view(samples.cluster(stale=False), samples.top_link(), now=NOW))
    assert "STALE" not in out


def test_top_heartbeat_interval_sets_the_stale_threshold() -> None:
    worker = samples.heartbeat(heartbeat_at=NOW - 3.0, heartbeat_interval=1.0)
    out = text(top_view(Cluster(workers=[worker], read_at=NOW), samples.top_link(), now=NOW))
    assert "3.0 s STALE" in out


@pytest.mark.parametrize("width", [80, 120])
def test_top_own_outage_shows_retry_state_and_keeps_last_data(width: int) -> None:
    out = text(top_view(samples.cluster(), samples.top_outage_link(), now=NOW), width)
    assert_fits(out, width)
    assert "● reconnecting to 127.0.0.1:6379/0" in out
    assert "down for 8.3 s" in out
    assert "attempt 5" in out
    assert "next retry in 1.1 s" in out
    assert "showing data read 0.5 s ago" in out
    assert "web-1-8123" in out  # the last data read stays on screen


def test_top_before_first_read() -> None:
    out = text(top_view(Cluster(), Link(state="connecting", endpoint="h:1/0"), now=NOW))
    assert "Redis: connecting" in out
    assert "no data read from Redis yet" in out
    assert "(no workers have a heartbeat)" in out


def test_formatters() -> None:
    assert fmt.duration(4.24) == "4.2 s"
    assert fmt.duration(185) == "3m 05s"
    assert fmt.duration(3725) == "1h 02m"
    assert fmt.size(85_262_336) == "81.3 MiB"
    assert fmt.rate(12_345) == "12.3k/s"
    assert fmt.sparkline([0, 0], 5) == "▁▁"
    assert fmt.sparkline(range(100), 10) == fmt.sparkline(range(90, 100), 10)
    assert len(fmt.sparkline(range(100), 10)) == 10


def test_top_worker_with_expired_heartbeat() -> None:
    gone = {"worker_id": "web-3-77", "dead": True}
    out = text(top_view(Cluster(workers=[gone], read_at=NOW), samples.top_link(), now=NOW))
    row = next(line for line in out.splitlines() if "web-3-77" in line)
    assert "no heartbeat" in row and "expired STALE" in row
