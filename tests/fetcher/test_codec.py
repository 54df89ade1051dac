"""Job codecs: round trips in both formats, and every bad input becomes a DecodeError with bytes."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from steadfetch.fetcher import DecodeError, Job, Keys
from steadfetch.fetcher.codec import decode, encode, reencode_for_retry
from steadfetch.fetcher.job import make_job

KEYS = Keys()
Q = KEYS.queue_key("default")
RQ = KEYS.queue_key("resque:stats")


def test_steadfetch_round_trip_keeps_raw_bytes() -> None:
    raw = encode(
        job_id="j1", task="send", args=[1, "a"], kwargs={"k": [1]}, queue_key=Q,
        attempt=1, max_attempts=5, enqueued_at=12.5, format="steadfetch",
    )  # fmt: skip
    job = decode(raw, Q, KEYS)
    assert (job.id, job.task, job.args, job.kwargs) == ("j1", "send", (1, "a"), {"k": [1]})
    assert (job.queue, job.attempt, job.max_attempts, job.enqueued_at) == ("default", 1, 5, 12.5)
    assert job.raw == raw and job.format == "steadfetch"


def test_resque_payload_as_apisonator_writes_it() -> None:
    raw = (
        b'{"class":"ThreeScale::Backend::Transactor::ReportJob","args":["s1",{"0":{"app_id":"a"}}]}'
    )
    job = decode(raw, RQ, KEYS)
    assert job.task == "ThreeScale::Backend::Transactor::ReportJob"
    assert job.args == ("s1", {"0": {"app_id": "a"}})
    assert (job.queue, job.format, job.attempt, job.max_attempts) == (
        "resque:stats",
        "resque",
        1,
        1,
    )
    assert job.id.startswith("resque-") and job.id == decode(raw, RQ, KEYS).id  # stable


def test_resque_round_trip_and_retry_increments_attempt() -> None:
    raw = encode(
        job_id="r1", task="Job", args=[1], kwargs={}, queue_key=RQ,
        attempt=1, max_attempts=3, enqueued_at=None, format="resque",
    )  # fmt: skip
    body = json.loads(raw)
    assert body["class"] == "Job" and body["args"] == [1]
    job = decode(raw, RQ, KEYS)
    again = decode(reencode_for_retry(job, KEYS), RQ, KEYS)
    assert (again.id, again.attempt, again.max_attempts, again.format) == ("r1", 2, 3, "resque")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf-8", "invalid UTF-8"),
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b'{"task": "t", "args": [NaN]}', "invalid JSON"),
        (b"[1, 2]", "wrong shape: a JSON list"),
        (b'"task"', "wrong shape: a JSON str"),
        (b'{"args": []}', 'neither "task"'),
        (b'{"task": ""}', "non-empty string"),
        (b'{"task": 7}', "non-empty string"),
        (b'{"task": "t", "args": {"a": 1}}', '"args" must be a list'),
        (b'{"task": "t", "kwargs": []}', '"kwargs" must be an object'),
        (b'{"task": "t", "attempt": 0}', '"attempt" must be an integer >= 1'),
        (b'{"task": "t", "max_attempts": "3"}', '"max_attempts" must be an integer'),
        (b'{"task": "t", "id": 5}', '"id" must be a non-empty string'),
        (b'{"task": "t", "enqueued_at": "yesterday"}', '"enqueued_at" must be a number'),
        (b'{"task": "t", "enqueued_at": 1e999}', "number 1e999 is out of range"),
        (b'{"task": "t", "attempt": true}', '"attempt" must be an integer >= 1'),
        (b'{"class": ["X"], "args": []}', "non-empty string"),
    ],
)
def test_bad_payloads_raise_decode_error_with_raw_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(raw, Q, KEYS)
    assert info.value.raw == raw
    assert reason in info.value.reason


def test_nesting_too_deep_is_a_decode_error_not_a_crash() -> None:
    raw = b'{"task": "t", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(DecodeError, match="invalid JSON: nested too deeply") as info:
        decode(raw, Q, KEYS)
    assert info.value.raw == raw


@pytest.mark.parametrize(
    "value",
    [
        "18446744073709551616",  # past 64 bits: orjson would read a float, json an exact int
        "-9223372036854775809",
        "123456789012345678901234567890",
        "18446744073709551615",
        "-9223372036854775808",
        "9007199254740993",
        "0.1",
        "-0.0",
        "1E2",
        "2.2250738585072011e-308",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004441",
        '"\\u00e9\\ud83d\\ude00 \u00e9"',
        '{"a": 1, "a": 2}',
        "[[[[[]]]]]",
    ],
)
def test_args_read_exactly_as_the_json_module_reads_them(value: str) -> None:
    raw = f'{{"id": "j", "task": "t", "args": [{value}, {value}]}}'.encode()
    expected = json.loads(raw)["args"]
    job = decode(raw, Q, KEYS)
    assert job.args == tuple(expected)
    assert [type(a) for a in job.args] == [type(a) for a in expected]
    assert repr(job.args) == repr(tuple(expected))  # -0.0 vs 0.0, float digits


@pytest.mark.parametrize(
    "raw",
    [
        b'{"task": "t", "args": ["\xed\xa0\x80"]}',  # a UTF-8-encoded surrogate
        b'{"task": "t", "args": ["\xc0\xaf"]}',  # an overlong encoding
        b'\xef\xbb\xbf{"task": "t"}',  # a byte order mark
        b'{"task": "t", "args": ["a\x01b"]}',  # a raw control character in a string
        b'{"task": "t", "args": [1,]}',
        b'{"task": "t", "args": [01]}',
        b'{"task": "t", "args": [Infinity]}',
    ],
)
def test_what_the_json_module_refuses_stays_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode(raw, Q, KEYS)
    assert info.value.reason.startswith(("invalid UTF-8", "invalid JSON"))


def test_make_job_is_job_with_the_same_fields() -> None:
    values = ("j", "t", (1,), {"k": 2}, "default", 2, 5, 12.5, b"raw", "resque")
    names = [f.name for f in dataclasses.fields(Job)]
    assert list(inspect.signature(make_job).parameters) == names
    fast, slow = make_job(*values), Job(*values)  # type: ignore[arg-type]
    assert fast == slow and repr(fast) == repr(slow)
    assert type(fast) is Job and dataclasses.asdict(fast) == dataclasses.asdict(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.attempt = 3  # type: ignore[misc]


def test_oversized_payload() -> None:
    raw = json.dumps({"task": "t", "args": ["x" * 100]}).encode()
    with pytest.raises(DecodeError, match=f"payload of {len(raw)} bytes exceeds the limit of 50"):
        decode(raw, Q, KEYS, max_bytes=50)


def test_encode_rejects_what_cannot_be_a_job() -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        encode(
            job_id="j", task="t", args=[object()], kwargs={}, queue_key=Q,
            attempt=1, max_attempts=1, enqueued_at=None, format="steadfetch",
        )  # fmt: skip
    with pytest.raises(ValueError, match="positional args only"):
        encode(
            job_id="j", task="t", args=[], kwargs={"a": 1}, queue_key=RQ,
            attempt=1, max_attempts=1, enqueued_at=None, format="resque",
        )  # fmt: skip


def test_queue_names_and_keys() -> None:
    assert KEYS.queue_key("high") == "steadfetch:queue:high"
    assert KEYS.queue_key("resque:priority") == "resque:queue:priority"
    assert KEYS.queue_name("resque:queue:priority") == "resque:priority"
    assert KEYS.queue_name("steadfetch:queue:high") == "high"
    assert Keys(prefix="app").processing("w1", "app:queue:a") == "app:processing:w1:app:queue:a"
