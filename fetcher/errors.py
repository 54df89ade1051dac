"""The fetcher's error family: few classes, each saying whether waiting could help.

Driver exceptions (redis-py, OSError) are mapped once, at the connection boundary
(:mod:`fetcher.failures`); code above the fetcher only ever sees these.
"""

from __future__ import annotations


class FetcherError(Exception):
    """Base of every error the fetcher raises on purpose."""


class ConfigurationError(FetcherError):
    """Waiting will not help: a bad URL, wrong password, unknown command, a script error.

    Never retried. The message names the endpoint (never the password) and says what to fix.
    """


class RedisUnavailable(FetcherError):
    """A one-shot call's deadline passed while Redis stayed unreachable.

    Long-running loops never see this: they retry forever. The message is the last descriptive
    outage line (endpoint, operation, cause).
    """


class DecodeError(FetcherError):
    """A payload that is not a job: invalid UTF-8 or JSON, a wrong shape, or too large.

    Carries the exact ``raw`` bytes so the payload can be dead-lettered, never dropped.
    """

    def __init__(self, raw: bytes, reason: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.reason = reason
