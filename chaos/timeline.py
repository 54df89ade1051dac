"""A rich live timeline of one run: phase, counters and the latest events, as they happen.

It listens to the history (``on_op``) and renders on rich's refresh thread; without a terminal
rich prints nothing live and the summary table remains the output.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from steadfetch.chaos.history import Op

SHOWN_EVENTS = 12


class Timeline:
    def __init__(self, console: Console, scenario: str, env: str) -> None:
        self.console = console
        self.title = f"{scenario} [{env}]"
        self._lock = threading.Lock()
        self._events: deque[tuple[float, str, str]] = deque(maxlen=SHOWN_EVENTS)
        self._t0 = time.time()
        self.phase = "starting"
        self.enqueued = 0
        self.executed = 0
        self.problems = 0
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)

    def on_op(self, op: Op) -> None:
        """History listener: count and keep what is worth showing."""
        with self._lock:
            if op.f == "enqueue" and op.type == "ok":
                self.enqueued += 1
            elif op.f == "execute" and op.type == "ok":
                self.executed += 1
            elif op.f == "phase":
                self.phase = str(op.value.get("phase"))
                self._event(op, "bold", f"phase: {self.phase}")
            elif op.f in ("fault-start", "fault-stop"):
                style = "red" if op.f == "fault-start" else "green"
                self._event(op, style, f"{op.f} {op.value.get('fault')}: {op.value.get('did')}")
            elif op.f in ("worker-start", "worker-exit", "signal"):
                self._event(op, "cyan", f"{op.process} {op.f} {_brief(op)}")
            elif op.f == "log" and str(op.value.get("level")) in ("WARNING", "ERROR", "CRITICAL"):
                self.problems += 1
                if self.problems <= 3 or "reachable again" in str(op.value.get("message")):
                    self._event(op, "yellow", str(op.value.get("message"))[:160])

    def _event(self, op: Op, style: str, text: str) -> None:
        self._events.append((op.time - self._t0, style, text))

    def __rich__(self) -> RenderableType:
        with self._lock:
            head = Text.assemble(
                (f"{self.phase:<11}", "bold magenta"),
                f" {time.time() - self._t0:5.1f} s   enqueued {self.enqueued}   "
                f"executed {self.executed}   warnings/errors logged {self.problems}",
            )
            lines = [
                Text(f"{t:6.1f} s  ", style="dim") + Text(m, style=s) for t, s, m in self._events
            ]
        return Panel(Group(head, *lines), title=self.title, title_align="left")

    def __enter__(self) -> Timeline:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)


def _brief(op: Op) -> str:
    keys = ("pid", "code", "signal", "after")
    return " ".join(f"{k}={op.value[k]}" for k in keys if op.value.get(k) is not None)
