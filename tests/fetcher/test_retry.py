"""The retry policy as data: delays, jitter bounds, and which failures are retryable."""

from __future__ import annotations

import pytest
from redis import exceptions as rx

from steadfetch.fetcher import RetryPolicy
from steadfetch.fetcher.failures import describe, is_retryable


def test_delays_double_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.delay(10_000) == 1.0  # no overflow on very long outages


def test_jitter_stays_between_half_and_full_delay() -> None:
    assert RetryPolicy(base=1.0, cap=8.0, rand=lambda: 0.0).delay(3) == 2.0
    assert RetryPolicy(base=1.0, cap=8.0, rand=lambda: 1.0).delay(3) == 4.0


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 2, "cap": 1}, {"max_attempts": 0}])
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy needs"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (rx.ConnectionError("Connection closed by server."), True),
        (rx.TimeoutError("Timeout reading from 127.0.0.1:6379"), True),
        (rx.BusyLoadingError("LOADING Redis is loading the dataset in memory"), True),
        (rx.ReadOnlyError("You can't write against a read only replica."), True),
        (rx.ResponseError("MASTERDOWN Link with MASTER is down"), True),
        (rx.MasterDownError("Link with MASTER is down"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (rx.AuthenticationError("invalid username-password pair"), False),
        (rx.ResponseError("ERR unknown command 'LMOVEX'"), False),
        (rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (rx.NoPermissionError("NOPERM this user has no permissions"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_connection_class_failures_are_retryable(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_describe_prefers_the_os_level_cause_and_never_a_bare_name() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError as os_error:
            raise rx.ConnectionError("Error while reading from 127.0.0.1:6379") from os_error
    except rx.ConnectionError as exc:
        assert describe(exc) == "ConnectionResetError [Errno 104] Connection reset by peer"
    assert describe(rx.ConnectionError()) == "ConnectionError connection closed by server"
    assert describe(EOFError()) == "EOFError connection closed by server"
    assert describe(rx.TimeoutError()) == "TimeoutError no reply within the read timeout"


def test_blocking_read_timeout_is_block_plus_a_margin() -> None:
    from steadfetch.fetcher import blocking_read_timeout

    assert blocking_read_timeout(1.0) == 2.0  # at least one second of margin
    assert blocking_read_timeout(60.0) == 75.0  # a quarter for long blocks
