"""Read the workload's execution record incrementally, as history operations."""

from __future__ import annotations

import json
from pathlib import Path

from steadfetch.chaos.history import Op, OpType


class RecordReader:
    """Tails the record file: each :meth:`read_new` returns the lines added since the last call.

    A line still being written (no newline yet) is left for the next call.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[Op]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [execution_op(json.loads(line)) for line in lines if line.strip()]


def execution_op(line: dict[str, object]) -> Op:
    """``{"event": "start"|"ok", "job_id", "worker_id", "pid", "time"}`` → an ``execute`` op."""
    kind: OpType = "invoke" if line["event"] == "start" else "ok"
    return Op(
        time=float(str(line["time"])),
        process=str(line["worker_id"]),
        f="execute",
        type=kind,
        value={"job_id": line["job_id"], "pid": line.get("pid")},
    )
