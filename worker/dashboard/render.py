"""Pure renderers: heartbeat-shaped dicts in, rich renderables out.

Nothing here reads Redis, a clock or a terminal: callers pass the snapshot and ``now`` (unix
seconds), so the live view, ``steadfetch top``, the screenshots and the tests all render the same
way from the same data. Keys follow the heartbeat JSON in ``docs/CONTRACTS.md``; every key is
optional, and a missing one shows as ``-`` rather than failing.

Layout is meant to work at 80 columns: panels stack vertically, and wide text (error lines)
wraps or is cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from steadfetch.worker.dashboard import fmt

Snapshot = Mapping[str, Any]

#: After an outage ends, the connection panel says "recovering" for this long.
RECOVERY_WINDOW = 30.0
#: A heartbeat older than this is highlighted as stale (unless the heartbeat names its interval,
#: then two missed beats make it stale).
DEFAULT_STALE_AFTER = 15.0
#: How many recent errors the errors panel shows.
MAX_ERRORS = 3


class Phase(StrEnum):
    """What the connection panel shows, derived from a connection state and its timings."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    OUTAGE = "outage"
    RECOVERING = "recovering"
    CLOSED = "closed"
    UNKNOWN = "unknown"


def _float(snap: Snapshot, key: str) -> float | None:
    value = snap.get(key)
    return float(value) if isinstance(value, int | float) else None


def _int(snap: Snapshot, key: str) -> int | None:
    value = snap.get(key)
    return int(value) if isinstance(value, int | float) else None


def _str(snap: Snapshot, key: str) -> str | None:
    value = snap.get(key)
    return str(value) if value is not None else None


@dataclass(frozen=True)
class Link:
    """A Redis connection as the connection panel shows it.

    Built from a heartbeat (the worker's own connection) or from the ``top`` process's own
    connection. ``attempt`` and ``next_retry_at`` come from the ``retry_attempt`` and
    ``retry_next_at`` keys (fetcher's ``ConnectionStats`` fields; never parsed from the line).
    """

    state: str = "unknown"
    endpoint: str | None = None
    outage_since: float | None = None
    attempt: int | None = None
    next_retry_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    outages: int = 0
    recovered_at: float | None = None

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> Link:
        return cls(
            state=str(snap.get("connection_state") or "unknown").lower(),
            endpoint=_str(snap, "endpoint"),
            outage_since=_float(snap, "outage_since"),
            attempt=_int(snap, "retry_attempt"),
            next_retry_at=_float(snap, "retry_next_at"),
            last_error=_str(snap, "last_error"),
            last_error_at=_float(snap, "last_error_at"),
            outages=_int(snap, "outages") or 0,
            recovered_at=_float(snap, "recovered_at"),
        )

    def phase(self, now: float) -> Phase:
        if self.state == "closed":
            return Phase.CLOSED
        if self.outage_since is not None or self.state == "reconnecting":
            return Phase.OUTAGE
        if self.state == "connected":
            ended = self.recovered_at
            if ended is None and self.outages > 0:
                ended = self.last_error_at
            if ended is not None and now - ended < RECOVERY_WINDOW:
                return Phase.RECOVERING
            return Phase.CONNECTED
        if self.state == "connecting":
            return Phase.CONNECTING
        return Phase.UNKNOWN


_PHASE_STYLE = {
    Phase.CONNECTING: "yellow",
    Phase.CONNECTED: "green",
    Phase.OUTAGE: "bold red",
    Phase.RECOVERING: "yellow",
    Phase.CLOSED: "dim",
    Phase.UNKNOWN: "dim",
}


def phase_style(phase: Phase) -> str:
    return _PHASE_STYLE[phase]


def connection_panel(link: Link, now: float) -> Panel:
    """State, outage timer, retry attempt and next wait, last descriptive error."""
    phase = link.phase(now)
    style = phase_style(phase)
    where = f" to {link.endpoint}" if link.endpoint else ""
    lines: list[Text] = []
    if phase is Phase.OUTAGE:
        since = link.outage_since if link.outage_since is not None else link.last_error_at
        down = None if since is None else now - since
        wait = None if link.next_retry_at is None else max(0.0, link.next_retry_at - now)
        lines.append(Text.assemble(("● reconnecting", style), where))
        lines.append(
            Text.assemble(
                "down for ",
                (fmt.duration(down), "bold"),
                "   attempt ",
                (fmt.count(link.attempt), "bold"),
                "   next retry in ",
                (fmt.duration(wait), "bold"),
            )
        )
    elif phase is Phase.RECOVERING:
        ended = link.recovered_at if link.recovered_at is not None else link.last_error_at
        ago = None if ended is None else now - ended
        lines.append(
            Text.assemble(
                ("● recovering", style), where, f": connected again {fmt.duration(ago)} ago"
            )
        )
    else:
        lines.append(Text.assemble((f"● {link.state}", style), where))
    lines.append(Text(f"outages so far: {link.outages}", style="dim"))
    if link.last_error:
        err_style = "red" if phase is Phase.OUTAGE else "dim"
        lines.append(Text.assemble(("last error: ", "bold"), (link.last_error, err_style)))
    return Panel(
        Group(*lines),
        title=Text(f"Redis: {phase.value}", style=style),
        title_align="left",
        border_style=style,
        box=box.ROUNDED,
    )


def capacity_bar(in_flight: int | None, limit: int | None, width: int = 24) -> Text:
    """``████████░░░░  8/20``: jobs in flight against the concurrency limit."""
    used, cap = in_flight or 0, limit or 0
    filled = 0 if cap <= 0 else min(width, round(used / cap * width))
    style = "red" if cap and used >= cap else "cyan"
    return Text.assemble(
        ("█" * filled, style),
        ("░" * (width - filled), "dim"),
        f"  {fmt.count(in_flight)}/{fmt.count(limit)}",
    )


def work_panel(snap: Snapshot, history: Sequence[float], spark_width: int = 40) -> Panel:
    """In flight vs limit, throughput now and its sparkline, latency, totals, memory."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("in flight", capacity_bar(_int(snap, "in_flight"), _int(snap, "concurrency")))
    grid.add_row(
        "throughput",
        Text.assemble(
            (fmt.rate(_float(snap, "jobs_per_second")), "bold"),
            "  ",
            (fmt.sparkline(history, spark_width), "cyan"),
        ),
    )
    grid.add_row(
        "latency",
        f"p50 {fmt.millis(_float(snap, 'latency_p50_ms'))}"
        f"   p99 {fmt.millis(_float(snap, 'latency_p99_ms'))}",
    )
    grid.add_row(
        "jobs",
        f"processed {fmt.count(_int(snap, 'processed'))}   failed {fmt.count(_int(snap, 'failed'))}"
        f"   retried {fmt.count(_int(snap, 'retried'))}"
        f"   dead {fmt.count(_int(snap, 'dead_lettered'))}",
    )
    grid.add_row(
        "ownership",
        f"recovered {fmt.count(_int(snap, 'recovered_jobs'))}"
        f"   presumed dead {fmt.count(_int(snap, 'presumed_dead'))}"
        f"   late settles {fmt.count(_int(snap, 'late_settles'))}",
    )
    grid.add_row(
        "primary",
        f"{_str(snap, 'primary') or '?'}   failovers {fmt.count(_int(snap, 'failovers'))}",
    )
    grid.add_row("memory", f"RSS {fmt.size(_float(snap, 'rss_bytes'))}")
    return Panel(grid, title="Work", title_align="left", box=box.ROUNDED)


def queues_table(
    depths: Mapping[str, int | None],
    *,
    in_processing: int | None = None,
    scheduled: int | None = None,
    dead: int | None = None,
) -> Table:
    """Waiting jobs per queue, then the jobs taken but not yet acked (all processing lists,
    when known), the scheduled and the dead-letter counts."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("queue", overflow="ellipsis", max_width=40)
    table.add_column("waiting", justify="right")
    for name, depth in depths.items():
        table.add_row(name, fmt.count(depth))
    if not depths:
        table.add_row(Text("(no queues)", style="dim"), "")
    if in_processing is not None:
        table.add_row(Text("processing", style="italic"), fmt.count(in_processing))
    table.add_row(Text("scheduled", style="italic"), fmt.count(scheduled))
    dead_style = "bold red" if dead else ""
    table.add_row(Text("dead-letter", style="italic"), Text(fmt.count(dead), style=dead_style))
    return table


def errors_panel(errors: Sequence[tuple[float, str]], now: float) -> Panel:
    """The most recent errors (newest last), each with its age."""
    body: RenderableType
    if not errors:
        body = Text("no errors", style="dim")
    else:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True, justify="right")
        grid.add_column(overflow="fold")
        for at, line in list(errors)[-MAX_ERRORS:]:
            grid.add_row(f"{fmt.duration(now - at)} ago", Text(line, style="red"))
        body = grid
    return Panel(body, title="Recent errors", title_align="left", box=box.ROUNDED)


def _snapshot_errors(snap: Snapshot) -> list[tuple[float, str]]:
    """Recent errors from a snapshot: ``recent_errors`` ([{"at", "line"}]), else ``last_error``."""
    found: list[tuple[float, str]] = []
    for item in snap.get("recent_errors") or ():
        if isinstance(item, Mapping) and item.get("line"):
            found.append((float(item.get("at") or 0.0), str(item["line"])))
    if not found and snap.get("last_error"):
        found.append((_float(snap, "last_error_at") or 0.0, str(snap["last_error"])))
    return found


def worker_header(snap: Snapshot, now: float) -> Text:
    started = _float(snap, "started_at")
    queues = ",".join(str(q) for q in snap.get("queues") or ()) or "-"
    return Text.assemble(
        ("steadfetch ", "bold"),
        (str(snap.get("worker_id") or "worker"), "bold cyan"),
        f" · {snap.get('hostname') or '?'}:{snap.get('pid') or '?'} · {queues}",
        f" · {snap.get('mode') or '-'}",
        f" · up {fmt.duration(None if started is None else now - started)}",
    )


def worker_dashboard(
    snap: Snapshot,
    *,
    history: Sequence[float] = (),
    errors: Sequence[tuple[float, str]] = (),
    now: float,
) -> Group:
    """The whole live view of one worker.

    ``history`` is the throughput sparkline's data (oldest first); ``errors`` are
    ``(unix_time, line)`` pairs (e.g. captured log records), merged with the snapshot's
    ``recent_errors``; the snapshot's ``last_error`` is listed only when there are none (it is
    the short form of a line already captured, and the connection panel shows it anyway).
    Queue depths come from the optional ``queue_depths`` ({name: n}), ``scheduled`` and
    ``dead_letter`` keys; without them the queue panel lists the worker's queues.
    """
    depths = snap.get("queue_depths")
    if not isinstance(depths, Mapping):
        depths = {str(q): None for q in snap.get("queues") or ()}
    queues = queues_table(
        depths,
        scheduled=_int(snap, "scheduled"),
        dead=_int(snap, "dead_letter"),
    )
    listed = snap.get("recent_errors") or not errors
    merged = sorted({*(_snapshot_errors(snap) if listed else ()), *errors})
    return Group(
        worker_header(snap, now),
        connection_panel(Link.from_snapshot(snap), now),
        SideBySide(
            work_panel(snap, history),
            Panel(queues, title="Queues", title_align="left", box=box.ROUNDED),
        ),
        errors_panel(merged, now),
    )


class SideBySide:
    """Two renderables next to each other when there is room (>= ``min_width``), else stacked,
    so the same view reads well at 80 columns and uses the width of a wide terminal."""

    def __init__(self, left: RenderableType, right: RenderableType, min_width: int = 110) -> None:
        self.left, self.right, self.min_width = left, right, min_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width < self.min_width:
            yield self.left
            yield self.right
            return
        grid = Table.grid(expand=True)
        grid.add_column(ratio=3)
        grid.add_column(ratio=2)
        grid.add_row(self.left, self.right)
        yield grid


# --- steadfetch top -------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """What ``top`` read from Redis in one poll: the heartbeats of (at most so many) live
    workers, how many more there are, how many registrations are stale (heartbeat expired: the
    worker is gone and nobody recovered it yet), and the queue figures."""

    workers: Sequence[Snapshot] = ()
    queues: Mapping[str, int] | None = None
    in_processing: int | None = None
    scheduled: int | None = None
    dead: int | None = None
    read_at: float | None = None
    more_workers: int = 0
    stale_workers: int = 0


def stale_after(snap: Snapshot, default: float = DEFAULT_STALE_AFTER) -> float:
    interval = _float(snap, "heartbeat_interval")
    return 2 * interval if interval else default


def heartbeat_age(snap: Snapshot, now: float) -> float | None:
    at = _float(snap, "heartbeat_at")
    return None if at is None else max(0.0, now - at)


def is_stale(snap: Snapshot, now: float, default: float = DEFAULT_STALE_AFTER) -> bool:
    age = heartbeat_age(snap, now)
    return age is None or age > stale_after(snap, default)


def workers_table(
    workers: Sequence[Snapshot], now: float, *, stale: float = DEFAULT_STALE_AFTER
) -> Table:
    """One row per worker; a stale heartbeat makes the whole row red and says STALE."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("worker", overflow="ellipsis", no_wrap=True, max_width=22)
    table.add_column("state", no_wrap=True)
    table.add_column("jobs/s", justify="right", no_wrap=True)
    table.add_column("busy", justify="right", no_wrap=True)
    table.add_column("hb age", justify="right", no_wrap=True)
    table.add_column("last error", overflow="ellipsis", no_wrap=True, ratio=1, min_width=10)
    for snap in sorted(workers, key=lambda s: str(s.get("worker_id"))):
        link = Link.from_snapshot(snap)
        phase = link.phase(now)
        old = is_stale(snap, now, stale)
        age = fmt.duration(heartbeat_age(snap, now))
        state = Text(link.state, style=phase_style(phase))
        if snap.get("dead") is True:  # registered, heartbeat expired (fetcher.Admin.workers)
            age, state = "expired", Text("no heartbeat", style="bold")
        table.add_row(
            str(snap.get("worker_id") or "?"),
            state,
            fmt.rate(_float(snap, "jobs_per_second")),
            f"{fmt.count(_int(snap, 'in_flight'))}/{fmt.count(_int(snap, 'concurrency'))}",
            Text(f"{age} STALE" if old else age, style="bold" if old else ""),
            Text(last_error_of(snap, link), style="dim" if phase is Phase.CONNECTED else "red"),
            style="red" if old else None,
        )
    return table


def last_error_of(snap: Snapshot, link: Link) -> str:
    """The newer of the worker's last Redis error and its last job error (heartbeat keys
    ``last_error`` and ``last_job_error``), for top's "last error" column."""
    job_error = _str(snap, "last_job_error")
    if job_error is None:
        return link.last_error or ""
    if link.last_error and (link.last_error_at or 0.0) > (_float(snap, "last_job_error_at") or 0.0):
        return link.last_error
    return job_error


def top_view(
    cluster: Cluster,
    link: Link,
    *,
    now: float,
    stale: float = DEFAULT_STALE_AFTER,
) -> Group:
    """``steadfetch top``: header, the top process's own Redis link when it is not healthy,
    the workers table and the queue table. During an outage the last data read stays on screen,
    marked with its age."""
    phase = link.phase(now)
    clock = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S UTC")
    header = Text.assemble(
        ("steadfetch top", "bold"),
        f" · {link.endpoint or '?'} · ",
        (phase.value, phase_style(phase)),
        f" · {len(cluster.workers) + cluster.more_workers} workers · {clock} · ",
        ("q quits", "dim"),
    )
    parts: list[RenderableType] = [header]
    if phase is not Phase.CONNECTED:
        parts.append(connection_panel(link, now))
    if cluster.read_at is None:
        parts.append(Text("no data read from Redis yet", style="dim"))
    elif phase is Phase.OUTAGE:
        parts.append(
            Text(f"showing data read {fmt.duration(now - cluster.read_at)} ago", style="yellow")
        )
    if cluster.workers:
        parts.append(workers_table(cluster.workers, now, stale=stale))
    else:
        parts.append(Text("(no workers have a heartbeat)", style="dim"))
    if cluster.more_workers:
        parts.append(
            Text(f"… and {fmt.count(cluster.more_workers)} more live workers", style="dim")
        )
    if cluster.stale_workers:
        parts.append(
            Text(
                f"{fmt.count(cluster.stale_workers)} stale registrations (heartbeat expired: "
                "workers gone, not recovered yet)",
                style="yellow",
            )
        )
    parts.append(
        queues_table(
            cluster.queues or {},
            in_processing=cluster.in_processing,
            scheduled=cluster.scheduled,
            dead=cluster.dead,
        )
    )
    return Group(*parts)
