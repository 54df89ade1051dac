"""LiveDashboard: on a terminal it draws and log lines flow above it; without one it is inert."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from rich.console import Console

from steadfetch.worker.dashboard.live import LiveDashboard
from steadfetch.worker.dashboard.logtap import LogTap
from tests.dashboard.samples import NOW, OUTAGE_LINE, heartbeat, outage_heartbeat

OUTAGE_LOG = (
    "Redis 127.0.0.1:6379/0 unreachable while fetching from queues [default]: "
    "ConnectionRefusedError [Errno 111] Connection refused (attempt 4, down 3.0 s, "
    "retrying in 2.5 s)"
)


@contextlib.contextmanager
def log_handler_on(stream: IO[str]) -> Iterator[logging.StreamHandler[IO[str]]]:
    """sys.stderr is ``stream``, and a plain stream handler on it sits on the root logger, as
    the worker's logging setup installs. Entered in the test body: pytest's own capture puts
    its stream back into sys.stderr between fixture setup and the test call."""
    saved = sys.stderr
    sys.stderr = stream
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)
        sys.stderr = saved


@pytest.fixture
def pty_stream() -> Iterator[IO[str]]:
    """The slave side of a real pseudo-terminal, as a text stream."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def terminal(width: int = 80) -> Console:
    return Console(record=True, width=width, force_terminal=True, color_system=None)


def test_draws_and_logs_flow_above(pty_stream: IO[str]) -> None:
    console = terminal()
    dash = LiveDashboard(lambda: heartbeat(), console, refresh=0.05, clock=lambda: NOW)
    with log_handler_on(pty_stream) as handler:
        with dash:
            assert dash.active
            logging.getLogger("worker.test").warning("job abc failed: ValueError: boom")
        assert not dash.active
        assert handler.stream is pty_stream  # rerouting undone
    out = console.export_text()
    log_at = out.index("WARNING worker.test: job abc failed: ValueError: boom")
    assert "Redis: connected" in out[log_at:]  # the final frame is drawn below the log line
    assert "12/20" in out
    assert "job abc failed: ValueError: boom" in out[out.index("Recent errors") :]


def test_stderr_to_a_file_stays_in_the_file(tmp_path: Path) -> None:
    console = terminal()
    dash = LiveDashboard(lambda: heartbeat(), console, refresh=0.05, clock=lambda: NOW)
    with (tmp_path / "worker.log").open("w") as log_file, log_handler_on(log_file), dash:
        logging.getLogger("worker.test").warning("to the file")
    assert "to the file" in (tmp_path / "worker.log").read_text()
    out = console.export_text()
    assert "Redis: connected" in out
    assert "to the file" not in out.split("Recent errors")[0]  # not printed above the view


def test_outage_retry_state_comes_from_the_snapshot_fields() -> None:
    snap = outage_heartbeat(retry_attempt=4, retry_next_at=NOW + 2.0)
    console = terminal()
    dash = LiveDashboard(lambda: snap, console, refresh=0.05, clock=lambda: NOW)
    with dash:
        logging.getLogger("fetcher.connection").warning(OUTAGE_LOG)  # says attempt 4, 2.5 s
        frame = Console(record=True, width=80, color_system=None)
        frame.print(dash.render())
    out = frame.export_text()
    assert "attempt 4" in out
    assert "next retry in 2.0 s" in out  # the field, not the line's 2.5 s


def test_history_is_bounded() -> None:
    clock = [NOW]
    dash = LiveDashboard(
        lambda: heartbeat(), terminal(), refresh=1.0, history=5, clock=lambda: clock[0]
    )
    for _ in range(12):
        dash.render()
        clock[0] += 1.0
    assert list(dash.history) == [153.4] * 5


def test_snapshot_failure_is_shown_not_raised() -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("in_flight")

    frame = Console(record=True, width=80, color_system=None)
    frame.print(LiveDashboard(broken, terminal()).render())
    assert "dashboard snapshot failed: KeyError: 'in_flight'" in frame.export_text()


def test_without_a_terminal_it_does_nothing(pty_stream: IO[str]) -> None:
    sink = io.StringIO()
    console = Console(file=sink, width=80)
    assert not console.is_terminal
    calls: list[int] = []

    def snapshot() -> dict[str, Any]:
        calls.append(1)
        return heartbeat()

    with log_handler_on(pty_stream) as handler, LiveDashboard(snapshot, console) as dash:
        assert not dash.active
        assert sys.stderr is pty_stream and handler.stream is pty_stream
        logging.getLogger("worker.test").warning("plain line")
    assert calls == []
    assert sink.getvalue() == ""


def test_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LiveDashboard(lambda: {}, no_color=True).console.no_color
    monkeypatch.setenv("NO_COLOR", "1")
    assert LiveDashboard(lambda: {}).console.no_color
    monkeypatch.delenv("NO_COLOR")
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, color_system="truecolor", width=80)
    dash = LiveDashboard(lambda: outage_heartbeat(), console, no_color=True, clock=lambda: NOW)
    console.print(dash.render())
    written = sink.getvalue()
    assert OUTAGE_LINE[:40] in written
    assert "\x1b[1m" in written  # still bold: NO_COLOR removes colour, not emphasis
    assert "\x1b[31" not in written and "\x1b[1;31" not in written


def test_logtap_leaves_out_the_recovery_line_by_its_event_field() -> None:
    tap = LogTap()
    log = logging.getLogger("fetcher.connection")
    with tap:
        log.warning(OUTAGE_LOG)
        log.warning(
            "Redis 127.0.0.1:6379/0 reachable again after 5.1 s (7 attempts)",
            extra={"connection_event": "restored"},
        )
    assert [line for _, line in tap.errors()] == [OUTAGE_LOG]
