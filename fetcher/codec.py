"""Queue protocol. Job payloads: steadfetch JSON and Resque JSON, both ways. Never pickle.

steadfetch: ``{"id", "task", "args", "kwargs", "queue" (key), "attempt", "enqueued_at"}`` and,
when the producer set them, ``"max_attempts"``, ``"retry_base"``, ``"retry_cap"`` (else the
worker decides). Resque: ``{"class", "args"}`` as Resque and Apisonator write it; steadfetch
adds ``id``, ``queue``, ``attempt`` and ``max_attempts`` when it writes one (Resque ignores
extra keys). Anything else raises DecodeError carrying the raw bytes.

Decode and encode agree on what a payload is, so that a job the worker accepted can always be
written again (for its retry) and read by every reader (the Lua scripts' cjson too): UTF-8 JSON,
numbers finite as doubles (``1e999`` is refused, not read as infinity; integers of any size are
kept exact), strings without lone surrogates, nesting at most :data:`MAX_NESTING` deep, at most
:data:`DEFAULT_MAX_PAYLOAD_BYTES`. :func:`encode` checks its output with the decoder itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from steadfetch.fetcher.errors import DecodeError
from steadfetch.fetcher.job import Job, JobFormat, make_job
from steadfetch.fetcher.keys import Keys

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
#: Deepest nesting of arrays and objects a payload may have. Python's json encoder fails near
#: 1000 levels (less inside a deep call stack), orjson at 1024 and Redis' cjson at 1000: well
#: below all three, and far above any real job's arguments.
MAX_NESTING = 100
RESQUE_DEFAULT_MAX_ATTEMPTS = 1  # Resque itself never retries
#: ``Job.max_attempts`` of a steadfetch payload that carries none: the worker decides (the
#: task's ``max_attempts``, else its ``--max-attempts``); Fetcher.nack alone uses 3.
MAX_ATTEMPTS_UNSET = 0
DEFAULT_MAX_ATTEMPTS = 3


def new_job_id() -> str:
    return uuid.uuid4().hex


def encode(
    *,
    job_id: str,
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    queue_key: str,
    attempt: int,
    max_attempts: int | None,
    enqueued_at: float | None,
    format: JobFormat,
    retry_base: float | None = None,
    retry_cap: float | None = None,
    unique_for: float | None = None,
) -> bytes:
    """The payload bytes for one job (compact JSON, UTF-8). ``max_attempts`` None or 0, and
    ``retry_base``/``retry_cap`` None: not written, the worker decides (the task's setting, else
    the worker's default). ``unique_for``: the job id is reserved (:mod:`fetcher.unique`); the
    mark tells the worker to release the reservation when it settles the job."""
    if max_attempts is not None and max_attempts < 0:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    body: dict[str, Any]
    if format == "resque":
        if kwargs:
            raise ValueError("Resque payloads carry positional args only; pass no kwargs")
        body = {"class": task, "args": list(args), "id": job_id, "queue": queue_key}
        limit = max_attempts or RESQUE_DEFAULT_MAX_ATTEMPTS
        if attempt != 1 or limit != RESQUE_DEFAULT_MAX_ATTEMPTS:
            body["attempt"], body["max_attempts"] = attempt, limit
    elif format == "steadfetch":
        body = {
            "id": job_id,
            "task": task,
            "args": list(args),
            "kwargs": dict(kwargs),
            "queue": queue_key,
            "attempt": attempt,
            "enqueued_at": enqueued_at,
        }
        if max_attempts:
            body["max_attempts"] = max_attempts
    else:
        raise ValueError(f"unknown job format {format!r}: use 'steadfetch' or 'resque'")
    for name, value in (("retry_base", retry_base), ("retry_cap", retry_cap)):
        if value is not None:
            body[name] = value  # the decoder below refuses what is not a positive number
    if unique_for is not None:
        body[UNIQUE_FIELD] = unique_for
    try:
        # ensure_ascii=False: a lone surrogate fails the .encode() here instead of going out as
        # an escape that the decoder (and cjson) would refuse.
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        raw = payload.encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"job {task!r} arguments are not JSON-serialisable: {exc}") from exc
    if len(raw) > DEFAULT_MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"job {task!r} payload of {len(raw)} bytes exceeds the limit of "
            f"{DEFAULT_MAX_PAYLOAD_BYTES} bytes that workers accept"
        )
    try:
        _job_from(_parse(raw), raw, "")  # what a worker would make of it: the same rules
    except DecodeError as exc:
        raise ValueError(f"job {task!r} cannot be a payload: {exc.reason}") from None
    except ValueError as exc:
        raise ValueError(f"job {task!r} cannot be a payload: {exc}") from None
    return raw


def reencode_for_retry(job: Job, keys: Keys) -> bytes:
    """The same job with ``attempt + 1``, in its own format (for the scheduled set)."""
    return encode(
        job_id=job.id,
        task=job.task,
        args=job.args,
        kwargs=job.kwargs,
        queue_key=keys.queue_key(job.queue),
        attempt=job.attempt + 1,
        max_attempts=job.max_attempts,
        enqueued_at=job.enqueued_at if job.format == "steadfetch" else None,
        format=job.format,
        retry_base=job.retry_base,
        retry_cap=job.retry_cap,
        unique_for=unique_window(job.raw),
    )


#: Payload field marking a job whose id is reserved; its value is the window (seconds).
UNIQUE_FIELD = "unique_for"


#: The largest integer a double holds: a bigger window (an integer the decoder keeps exact) is
#: read as this one, not an OverflowError at the job's ack that stopped the worker.
_LARGEST_DOUBLE = int(sys.float_info.max)


def unique_window(raw: bytes) -> float | None:
    """The reservation window a payload carries, if any (cheap when it carries none)."""
    if b'"unique_for":' not in raw:
        return None
    try:
        value = json.loads(raw).get(UNIQUE_FIELD)
    except (ValueError, AttributeError):
        return None
    kind = type(value)
    if kind is int and value > _LARGEST_DOUBLE:  # exact to the decoder; no double holds it
        return float(_LARGEST_DOUBLE)  # a window this long is capped when used (MAX_WAIT)
    return float(value) if (kind is int or kind is float) and value >= 0 else None


def _check_backoff(base: Any, cap: Any) -> None:
    """A payload's own retry backoff: positive seconds (finite: _parse refuses 1e999)."""
    for name, value in (("retry_base", base), ("retry_cap", cap)):
        kind = type(value)
        if value is not None and ((kind is not int and kind is not float) or value <= 0):
            raise ValueError(f'"{name}" must be a number of seconds > 0, got {value!r}')


def _bad_count(name: str, value: Any) -> ValueError:
    return ValueError(f'"{name}" must be an integer >= 1, got {value!r}')


def decode(
    raw: bytes,
    queue_key: str,
    keys: Keys,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    queue_name: str | None = None,
) -> Job:
    """Parse ``raw`` fetched from ``queue_key``; raise DecodeError with the reason."""
    if len(raw) > max_bytes:
        raise DecodeError(raw, f"payload of {len(raw)} bytes exceeds the limit of {max_bytes}")
    body = _parse(raw)
    if type(body) is not dict:
        raise DecodeError(raw, f"wrong shape: a JSON {type(body).__name__}, not an object")
    try:
        return _job_from(body, raw, queue_name or keys.queue_name(queue_key))
    except ValueError as exc:
        raise DecodeError(raw, f"wrong shape: {exc}") from None


#: orjson reads an integer beyond 64 bits as a float (dropping digits) where the json module
#: keeps it exact; a run of 19 digits may be one, so such payloads take the json module's path.
#: Earns its place (issue 13; measured 2026-11-29 on a no-op job's payload, CPU time): the scan
#: (translate + substring search) 0.6-0.9 us plus orjson 0.8-1.3 us, against 3.0-4.2 us for the
#: json module alone, which would also need the full _check_value walk: 1-2 us saved a job.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", b"\0" * 10)
_LONG_DIGIT_RUN = b"\0" * 19


def _parse(raw: bytes) -> Any:
    """The JSON value in ``raw`` under the module's rules (see the module docstring).

    orjson when it can read it (it refuses what the rules refuse, except nesting up to 1024
    levels: checked after), else the json module, made as strict (non-finite numbers refused)
    and then checked in full, so the result never depends on which parser ran; the json module
    also names the reason."""
    if _LONG_DIGIT_RUN not in raw.translate(_DIGITS_TO_NUL):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if raw.count(b"[") + raw.count(b"{") > MAX_NESTING:  # else it cannot be too deep
                _check_value(raw, value)
            return value
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(raw, f"invalid UTF-8: {exc}") from None
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:
        raise DecodeError(raw, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError(raw, "invalid JSON: nested too deeply") from None
    _check_value(raw, value)
    return value


def _check_value(raw: bytes, value: Any) -> None:
    """Raise DecodeError unless ``value`` nests at most MAX_NESTING deep and every string in it
    is valid Unicode (no lone surrogate). Iterative: a deep value cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str:
            _check_text(raw, item)
        elif kind is list or kind is dict:
            if depth > MAX_NESTING:
                raise DecodeError(raw, f"nested more than {MAX_NESTING} levels deep")
            if kind is dict:
                for key in item:
                    _check_text(raw, key)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)


def _check_text(raw: bytes, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(raw, f"a string holds a lone surrogate: {text[:40]!r}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is out of range for a double")
    return number


#: One instance (building one costs): NaN and Infinity refused, 1e999 refused, not read as inf.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _job_from(body: dict[str, Any], raw: bytes, queue_name: str) -> Job:
    # The fetch hot path: plain lookups and exact type checks (type(), not isinstance(): True is
    # no attempt count), no helper calls unless something is wrong.
    get = body.get
    fmt: JobFormat
    if "task" in body:
        task, fmt, default_max = body["task"], "steadfetch", MAX_ATTEMPTS_UNSET
        kwargs = get("kwargs", {})
    elif "class" in body:
        task, fmt, default_max = body["class"], "resque", RESQUE_DEFAULT_MAX_ATTEMPTS
        kwargs = {}
    else:
        raise ValueError('neither "task" (steadfetch) nor "class" (Resque) is present')
    if type(task) is not str or not task:
        raise ValueError(f"the task name must be a non-empty string, got {task!r}")
    args = get("args", [])
    if type(args) is not list:
        raise ValueError(f'"args" must be a list, got {type(args).__name__}')
    if type(kwargs) is not dict:
        raise ValueError(f'"kwargs" must be an object, got {type(kwargs).__name__}')
    job_id = get("id")
    if job_id is None:  # Resque payloads carry no id: derive a stable one from the bytes
        job_id = "resque-" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:20]
    if type(job_id) is not str or not job_id:
        raise ValueError(f'"id" must be a non-empty string, got {job_id!r}')
    enqueued_at: Any = get("enqueued_at")
    kind = type(enqueued_at)  # a float is finite: _parse refuses 1e999
    if kind is not float and kind is not int and enqueued_at is not None:
        raise ValueError(f'"enqueued_at" must be a number, got {enqueued_at!r}')
    attempt = get("attempt", 1)
    if type(attempt) is not int or attempt < 1:
        raise _bad_count("attempt", attempt)
    max_attempts = get("max_attempts")
    if max_attempts is None:
        max_attempts = default_max
    elif type(max_attempts) is not int or max_attempts < 1:
        raise _bad_count("max_attempts", max_attempts)
    retry_base, retry_cap = get("retry_base"), get("retry_cap")
    if retry_base is not None or retry_cap is not None:
        _check_backoff(retry_base, retry_cap)
    return make_job(
        job_id,
        task,
        tuple(args),
        kwargs,
        queue_name,
        attempt,
        max_attempts,
        enqueued_at,
        raw,
        fmt,
        retry_base,
        retry_cap,
    )
