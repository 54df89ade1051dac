"""The Job value: what a handler gets, plus the exact bytes it came as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JobFormat = Literal["steadfetch", "resque"]


@dataclass(frozen=True)
class Job:
    """One fetched job. ``raw`` is the payload exactly as stored: ack removes it by value.

    ``queue`` is the queue *name* (``high``, ``resque:stats``); ``attempt`` starts at 1.
    """

    id: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    attempt: int
    max_attempts: int
    enqueued_at: float | None
    raw: bytes = field(repr=False)
    format: JobFormat = "steadfetch"
