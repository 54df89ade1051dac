"""The history: every operation of a chaos run, in one ordered list (Jepsen's central idea).

The workload, the nemesis and the runner share nothing but this record. Each operation says who
did it (``process``), what (``f``), and how it ended (``type``):

- ``invoke``: it began (an enqueue was sent, a job execution started);
- ``ok``: it certainly happened;
- ``fail``: it certainly did not happen;
- ``info``: unknown (an exception, a timeout: the enqueue may or may not be in Redis).

An exception becomes ``info``, never a dropped operation. Times are wall-clock seconds
(``time.time()``), because executions are recorded by the worker process and log lines by the
runner, and all of them are compared on one axis.

Functions (``f``) used by the suite:

============== ============ =====================================================================
f              process      value
============== ============ =====================================================================
enqueue        producer     job_id (invoke, then ok / fail / info with error)
execute        worker id    job_id, attempt, pid (invoke = handler started, ok = handler finished)
fault-start    nemesis      fault, did, ambiguous, outage
fault-stop     nemesis      fault, did, expect_recovery
worker-start   worker-N     worker_id, pid, argv
worker-exit    worker-N     code, after (seconds since its last signal, or null)
signal         nemesis      target, signal, expect_codes, within
rss            worker-N     rss (bytes)
log            worker-N     level, message
phase          runner       phase
inspect        runner       where (job id -> "queue" | "processing" | "dead" | "scheduled")
holding        runner       lists (worker id -> jobs in its processing lists), sampled directly
============== ============ =====================================================================

``worker-start`` also carries the worker's facts: ``window`` (concurrency + prefetch), ``holds``
(what a death licenses), ``ttl``, ``heartbeat_interval`` and ``queues`` (in priority order);
``enqueue`` invokes carry the job's ``queue``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: tuple[OpType, ...] = ("invoke", "ok", "fail", "info")


@dataclass(frozen=True)
class Op:
    """One operation. ``value`` holds what it was about (job id, fault name, exit code, ...)."""

    time: float
    process: str
    f: str
    type: OpType
    value: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Op:
        kind = data["type"]
        if kind not in OP_TYPES:
            raise ValueError(f"operation type {kind!r} is not one of {OP_TYPES}")
        return Op(
            time=float(data["time"]),
            process=str(data["process"]),
            f=str(data["f"]),
            type=cast(OpType, kind),
            value=dict(data.get("value") or {}),
        )


Listener = Callable[[Op], None]


class History:
    """A thread-safe, append-only list of operations with listeners (the live timeline).

    >>> h = History()
    >>> _ = h.record("producer", "enqueue", "invoke", job_id="j1")
    >>> _ = h.record("producer", "enqueue", "ok", job_id="j1")
    >>> [op.type for op in h.ops()]
    ['invoke', 'ok']
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._ops: list[Op] = []
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def record(self, process: str, f: str, type: OpType, **value: Any) -> Op:
        """Append an operation stamped now."""
        return self.add(Op(self._clock(), process, f, type, value))

    def add(self, op: Op) -> Op:
        """Append an operation that carries its own time (e.g. read from the worker's record)."""
        with self._lock:
            self._ops.append(op)
        for listener in self._listeners:
            listener(op)
        return op

    def ops(self) -> list[Op]:
        """A snapshot, ordered by time (operations from several sources arrive out of order)."""
        with self._lock:
            snapshot = list(self._ops)
        return sorted(snapshot, key=lambda op: op.time)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def write_jsonl(self, path: Path) -> None:
        write_jsonl(self.ops(), path)


def write_jsonl(ops: Iterable[Op], path: Path) -> None:
    path.write_text("".join(op.to_json() + "\n" for op in ops))


def read_jsonl(path: Path) -> list[Op]:
    return [Op.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line]


def select(ops: Sequence[Op], f: str, type: OpType | None = None) -> Iterator[Op]:
    """The operations with function ``f`` (and completion ``type``, when given)."""
    return (op for op in ops if op.f == f and (type is None or op.type == type))
