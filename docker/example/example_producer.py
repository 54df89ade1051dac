"""The example producer: ``python example_producer.py`` enqueues ``process_order`` jobs.

Settings (environment): ``STEADFETCH_REDIS_URL`` (default ``redis://redis:6379/0``),
``EXAMPLE_RATE`` jobs per second (default 5), ``EXAMPLE_COUNT`` jobs in all (default 0 =
until stopped), ``EXAMPLE_QUEUE`` (default ``default``). SIGTERM/SIGINT stop it with exit 0.
A Redis outage is reported and waited out (the next enqueue tries again); a configuration
error (bad URL, wrong password) exits 2.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
from types import FrameType

from steadfetch import ConfigurationError, RedisUnavailable, SyncProducer
from steadfetch.worker.logs import configure_logging

log = logging.getLogger("example.producer")


def main() -> int:
    configure_logging()  # the worker's own log format
    url = os.environ.get("STEADFETCH_REDIS_URL", "redis://redis:6379/0")
    interval = 1.0 / float(os.environ.get("EXAMPLE_RATE", "5"))
    count = int(os.environ.get("EXAMPLE_COUNT", "0"))
    queue = os.environ.get("EXAMPLE_QUEUE", "default")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    order_ids = itertools.count(1) if count == 0 else iter(range(1, count + 1))
    with SyncProducer(url) as producer:
        for order_id in order_ids:
            if stop.is_set():
                break
            try:
                job_id = producer.enqueue("process_order", order_id, queue=queue)
                log.info("enqueued order %s as job %s", order_id, job_id)
            except RedisUnavailable as exc:
                log.warning("order %s not enqueued: %s", order_id, exc)
            except ConfigurationError as exc:  # a wrong URL or password: waiting will not help
                log.error("%s", exc)
                return 2
            stop.wait(interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
