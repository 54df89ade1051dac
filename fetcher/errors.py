"""Connection layer.

The fetcher's error family: few classes, each saying whether waiting could help.

Driver exceptions (redis-py, OSError) are mapped once, at the connection boundary
(:mod:`fetcher.failures`); code above the fetcher only ever sees these.
"""

from __future__ import annotations


class FetcherError(Exception):
    """Base of every error the fetcher raises on purpose.

    ``endpoint`` (``host:port/db``, never a password) and ``operation`` (``"fetching from queues
    [high]"``) say where and what, as data: log lines, the dashboard and ``top`` read them from
    here instead of parsing the message. Either is ``""`` when the error has no such context
    (a malformed URL has no endpoint yet).
    """

    def __init__(self, message: str, *, endpoint: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.operation = operation


class ConfigurationError(FetcherError):
    """Waiting will not help: a bad URL, wrong password, unknown command, a script error.

    Never retried. The message names the endpoint (never the password) and says what to fix.
    """


class WrongTypeError(ConfigurationError):
    """A ``WRONGTYPE`` reply: a key holds a value of another type than the command needs.

    A configuration error by default (a shared key such as the registry set was overwritten), but
    a caller for which the key belongs to one job (that job's queue on promote, requeue or retry)
    catches it and dead-letters that one job instead: one job's failure never stops a worker.
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
