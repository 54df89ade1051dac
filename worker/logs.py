"""Log output for the binary: one text line or one JSON object per record, on stderr.

Records are formatted where they are logged and written by one thread of the handler's own
(:class:`BackgroundStreamHandler`): a stderr that nobody reads (a pipe whose reader stalled, a
blocked log driver) would otherwise block the event loop inside ``write`` and with it the
heartbeat, the settles and ``/healthz``, for as long as nobody reads. Beyond ``MAX_PENDING``
waiting records (or ``MAX_PENDING_CHARS`` of their text) the newest are dropped and counted;
the writer says how many, once it can write.

Text: ``2026-11-27T10:00:00.123Z INFO worker: message`` (docs/CONTRACTS.md). JSON carries the
same fields plus the traceback as a string, so a log shipper never has to parse a multi-line
block. Fields passed with ``extra=`` (``task``, ``job_id``, ``attempt``...) appear in both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def utc_timestamp(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = utc_timestamp(record.created)
        line = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_extras(record))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


MAX_PENDING = 10_000  # records waiting for a stream that does not take them (then dropped)
MAX_PENDING_CHARS = 16 * 1024 * 1024  # and their text (a traceback line can be a megabyte)
FLUSH_TIMEOUT = 5.0  # how long flush() (and so exit) waits for a stream that does not take them


class BackgroundStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose writes never block the thread that logs (see the module doc).

    ``flush()`` waits, at most ``FLUSH_TIMEOUT``, until every queued record is written, so
    ``logging.shutdown()`` at exit still writes everything a reader takes. It stays a
    StreamHandler: ``setStream`` (the live dashboard) works, the writer reads ``self.stream``
    for each record.
    """

    def __init__(
        self,
        stream: TextIO,
        max_pending: int = MAX_PENDING,
        max_pending_chars: int = MAX_PENDING_CHARS,
    ) -> None:
        super().__init__(stream)
        self._pending: queue.Queue[tuple[logging.LogRecord | None, str | bytes] | None] = (
            queue.Queue(max_pending)
        )
        self._max_chars = max_pending_chars
        self._chars = 0  # text waiting in _pending
        self._dropped = 0
        self._count_lock = threading.Lock()
        # Owned by this handler: ended by close() (a sentinel), a daemon so that a stream
        # blocked for good cannot keep the process from exiting.
        self._writer = threading.Thread(target=self._write_loop, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001  (logging's own contract: a bad record is reported)
            self.handleError(record)
            return
        self._enqueue(record, text)

    def write_line(self, line: bytes) -> None:
        """Queue ``line`` to be written as it is (the supervisor's relay of its children's
        output: bytes unchanged, in order with its own records, never blocking its loop)."""
        self._enqueue(None, line)

    def _enqueue(self, record: logging.LogRecord | None, text: str | bytes) -> None:
        with self._count_lock:
            if self._chars and self._chars + len(text) > self._max_chars:
                self._dropped += 1
                return
            try:
                self._pending.put_nowait((record, text))
            except queue.Full:
                self._dropped += 1
                return
            self._chars += len(text)

    def _written(self, text: str | bytes) -> int:
        """Count ``text`` as written; the records dropped since the last call."""
        with self._count_lock:
            self._chars -= len(text)
            dropped, self._dropped = self._dropped, 0
        return dropped

    def _write(self, record: logging.LogRecord | None, text: str | bytes) -> None:
        try:
            stream = self.stream
            if isinstance(text, str):
                stream.write(text + self.terminator)
                stream.flush()
            elif (buffer := getattr(stream, "buffer", None)) is not None:
                stream.flush()
                buffer.write(text)
                buffer.flush()
            else:  # a text-only stream (the live dashboard's proxy)
                stream.write(text.decode(errors="replace"))
                stream.flush()
        except Exception:  # noqa: BLE001  (as StreamHandler.emit: reported, never raised)
            if record is not None:
                self.handleError(record)
            # a relayed line whose stream failed is dropped, as the relay always did

    def _write_loop(self) -> None:
        while (item := self._pending.get()) is not None:
            try:
                self._write(*item)
                dropped = self._written(item[1])
                if dropped:
                    note = logging.makeLogRecord(
                        {
                            "name": "worker.logs",
                            "levelno": logging.WARNING,
                            "levelname": "WARNING",
                            "msg": f"{dropped} log record(s) dropped: the log stream (stderr) "
                            "took nothing while the most records it may hold waited",
                        }
                    )
                    self._write(note, self.format(note))
            finally:
                self._pending.task_done()
        self._pending.task_done()

    def drained(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait at most ``timeout`` until the writer has written everything queued so far."""
        with self._pending.all_tasks_done:
            return self._pending.all_tasks_done.wait_for(
                lambda: not self._pending.unfinished_tasks, timeout
            )

    def flush(self) -> None:
        self.drained()

    def close(self) -> None:
        if self.drained():
            self._pending.put(None)
            self._writer.join(FLUSH_TIMEOUT)
        # else the stream is blocked: the daemon writer goes with the process
        super().close()


def relay_line(line: bytes) -> None:
    """Write ``line`` (bytes, unchanged) to stderr through the root's background handler, so a
    stderr nobody reads never blocks the caller; directly when there is none."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BackgroundStreamHandler):
            handler.write_line(line)
            return
    with contextlib.suppress(OSError):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()


def configure_logging(
    fmt: LogFormat = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Replace the root handlers with one stream handler in ``fmt`` (idempotent)."""
    handler = BackgroundStreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, BackgroundStreamHandler):
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
