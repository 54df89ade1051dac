"""An ack that lands between two slices of an adoption read must not hide an orphan.

Adoption reads a processing list in slices; an ack that removes a held job before the next
slice shifts the list, so that slice starts one item too far and may skip an orphan. The fetcher
notices (a settle happened during a multi-slice read); it must then read again before it takes or
blocks, or the orphan waits a whole block timeout (observed: the unreceivable-payload test in
test_big_replies.py ended its fetch with the payload still in the processing list).
"""

from __future__ import annotations

import asyncio
import json

import redis

from steadfetch.fetcher import Fetcher, Keys, RedisConnection
from steadfetch.fetcher.adoption import MIN_FETCH_BYTES

KEYS = Keys()
PROCESSING = KEYS.processing("w1", KEYS.queue_key("default"))
TRIALS = 10


def job(name: str) -> bytes:
    # Two of these exceed the smallest byte budget: every slice then holds one item.
    return json.dumps(
        {"id": name, "task": "t", "args": ["x" * (MIN_FETCH_BYTES * 2 // 3)]}
    ).encode()


async def test_an_ack_between_two_slices_does_not_hide_an_orphan(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    # Two idle pooled connections: the ack is sent in the same loop turn as the first slice.
    await asyncio.gather(*(conn.execute("warming", lambda r: r.ping()) for _ in range(2)))
    for trial in range(TRIALS):
        oracle.delete(PROCESSING)
        oracle.rpush(PROCESSING, job(f"held-{trial}"), job(f"orphan-{trial}"))  # an earlier run's
        # A long block: a fetch that skipped the orphan and blocked would not return in time.
        fetcher = Fetcher(conn, "w1", ["default"], block_timeout=30)
        fetcher.fetch_bytes = MIN_FETCH_BYTES
        [held] = await fetcher.fetch(1)
        assert held.id == f"held-{trial}"
        fetching = asyncio.create_task(fetcher.fetch(1))
        await asyncio.sleep(0)  # one loop step: the fetch sends its first slice read, then we ack
        await fetcher.ack(held)
        async with asyncio.timeout(10):
            assert [j.id for j in await fetching] == [f"orphan-{trial}"]
        await fetcher.ack_many([])
