"""Small text formatters shared by the renderers (durations, sizes, rates, sparklines)."""

from __future__ import annotations

from collections.abc import Sequence

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``42 s``, ``3m 05s``, ``1h 02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m {secs:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m"


def size(n_bytes: float | None) -> str:
    """Bytes in binary units: ``81.3 MiB``; ``-`` when unknown."""
    if n_bytes is None:
        return "-"
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def rate(per_second: float | None) -> str:
    """Jobs per second: ``0.0/s``, ``143.2/s``, ``12.3k/s``; ``-`` when unknown."""
    if per_second is None:
        return "-"
    if per_second >= 10_000:
        return f"{per_second / 1000:.1f}k/s"
    return f"{per_second:.1f}/s"


def millis(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 10_000:
        return duration(ms / 1000)
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled to their maximum.

    >>> sparkline([0, 1, 2, 4], 4)
    '▁▃▅█'
    """
    tail = list(values)[-width:] if width > 0 else []
    top = max(tail, default=0.0)
    if top <= 0:
        return SPARK_CHARS[0] * len(tail)
    last = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round(max(v, 0.0) / top * last)] for v in tail)
