"""steadfetch's fetcher: the only code that talks to Redis.

One connection owner (:class:`RedisConnection`) with one retry policy (:class:`RetryPolicy`),
reliable batched fetch and recovery (:class:`Fetcher`), enqueueing (:class:`Producer`,
:class:`SyncProducer`) and an operator's view (:class:`Admin`). See docs/CONTRACTS.md.
"""

from fetcher.admin import Admin
from fetcher.connection import RedisConnection, blocking_read_timeout
from fetcher.errors import (
    ConfigurationError,
    DecodeError,
    FetcherError,
    RedisUnavailable,
    WrongTypeError,
)
from fetcher.fetch import Fetcher
from fetcher.job import Job
from fetcher.keys import Keys
from fetcher.producer import JobSpec, Producer, SyncProducer
from fetcher.retry import RetryPolicy
from fetcher.state import (
    ConnectionEvent,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    ConnectionStats,
)
from fetcher.unique import EnqueuedId

__all__ = [
    "Admin",
    "ConfigurationError",
    "ConnectionEvent",
    "ConnectionLost",
    "ConnectionRestored",
    "ConnectionState",
    "ConnectionStats",
    "DecodeError",
    "EnqueuedId",
    "Fetcher",
    "FetcherError",
    "Job",
    "JobSpec",
    "Keys",
    "Producer",
    "RedisConnection",
    "RedisUnavailable",
    "RetryPolicy",
    "SyncProducer",
    "WrongTypeError",
    "blocking_read_timeout",
]
