"""Queue protocol. Dead-letter entries: the JSON shape of docs/CONTRACTS.md, built in one place."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

#: Tracebacks are summarised to their last lines: enough to see where, bounded in size.
TRACEBACK_MAX_CHARS = 4000


def summarise_traceback(text: str | None) -> str | None:
    if text is None or len(text) <= TRACEBACK_MAX_CHARS:
        return text
    return "...\n" + text[-TRACEBACK_MAX_CHARS:]


def entry(
    *,
    queue_key: str,
    raw: bytes,
    reason: str,
    error: str | None = None,
    traceback_text: str | None = None,
    attempts: int = 0,
    worker_id: str | None = None,
) -> bytes:
    """One dead-letter entry. ``raw`` goes in as text, or as ``raw_b64`` when not UTF-8."""
    body: dict[str, Any] = {"queue": queue_key}
    try:
        body["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        body["raw_b64"] = base64.b64encode(raw).decode("ascii")
    body.update(
        reason=reason,
        error=error,
        traceback=summarise_traceback(traceback_text),
        attempts=attempts,
        failed_at=time.time(),
        worker_id=worker_id,
    )
    return json.dumps(body, separators=(",", ":")).encode()


def raw_of(body: dict[str, Any]) -> bytes | None:
    """The original payload bytes of a parsed entry (``None`` when the entry has none)."""
    if isinstance(body.get("raw"), str):
        return str(body["raw"]).encode("utf-8")
    if isinstance(body.get("raw_b64"), str):
        return base64.b64decode(body["raw_b64"])
    return None
