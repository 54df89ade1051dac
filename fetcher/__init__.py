"""steadfetch's fetcher: the only code that talks to Redis.

One connection owner (:class:`RedisConnection`) with one retry policy (:class:`RetryPolicy`),
reliable batched fetch and recovery (:class:`Fetcher`), enqueueing (:class:`Producer`,
:class:`SyncProducer`) and an operator's view (:class:`Admin`). See docs/CONTRACTS.md.

The package is flat, in two layers; each module's docstring starts with its layer's name.

Connection layer (Redis as a service that may be away; knows nothing of jobs or queues):
    connection (the one owner of clients and pools), retry (backoff policy), failures (driver
    exception -> kind and wording), state (connection state, outage stats, events),
    cancellation (cancellation that sticks), url (URL parsing), errors (the error family),
    durability (WAIT/WAITAOF confirmation).

Queue protocol (jobs, queues and workers as Redis keys and Lua scripts, on top of the first):
    keys (names -> keys), job (the Job value), codec (payload formats), unique (idempotent
    enqueue), scripts (the Lua scripts and EVALSHA), fetch (the Fetcher: fetch, ack, retry,
    dead-letter, recovery), adoption (the Fetcher's held payloads, replies that may be lost,
    the reply byte budget, adoption of orphans), settle (fenced moves out of the processing
    lists, raw dead-lettering, give-back at shutdown), registry (live workers, recovery of the
    dead), scheduling (job backoff, promotion of due jobs), deadletter (entry shape), producer
    (enqueue), admin (operator's view and repairs), cluster (the calls a Redis Cluster splits
    by hash slot).

Imports go one way: no connection-layer module imports a queue-protocol module
(``tests/fetcher/test_layers.py`` checks it). The public API is the short list below.
"""

from steadfetch.fetcher.admin import Admin
from steadfetch.fetcher.connection import RedisConnection, blocking_read_timeout
from steadfetch.fetcher.errors import (
    ConfigurationError,
    DecodeError,
    FetcherError,
    RedisUnavailable,
    WrongTypeError,
)
from steadfetch.fetcher.fetch import Fetcher
from steadfetch.fetcher.job import Job
from steadfetch.fetcher.keys import Keys
from steadfetch.fetcher.producer import JobSpec, Producer, SyncProducer
from steadfetch.fetcher.retry import RetryPolicy
from steadfetch.fetcher.state import (
    ConnectionEvent,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    ConnectionStats,
)
from steadfetch.fetcher.unique import EnqueuedId

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
