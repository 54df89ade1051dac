"""The shared Lua snippets (fetcher/lua/_*.lua) behave the same in every script that uses them,
against a real redis-server: a broken wake key costs a wake-up, never the jobs or an error."""

from __future__ import annotations

import hashlib

import redis

from steadfetch.fetcher import RedisConnection
from steadfetch.fetcher.adoption import GIVE_BACK


async def test_give_back_moves_the_jobs_when_the_wake_key_is_broken(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """give_back.lua pushed its wake token unchecked: a wake key of another type failed the
    script after the jobs had moved (no rollback), and the caller took it for a failed give-back.
    It now uses wake_up, as every other script does (failed before: WrongTypeError)."""
    oracle.rpush("t:p", "a", "held", "c")
    oracle.set("t:wake", "not a list")
    held = hashlib.sha1(b"held").hexdigest()
    keys = ["t:p", "t:q", "t:wake"]
    moved = await conn.execute("giving back", GIVE_BACK.bind(keys, [16, held]), write=True)
    assert moved == 2
    assert oracle.lrange("t:q", 0, -1) == [b"a", b"c"] and oracle.lrange("t:p", 0, -1) == [b"held"]
    assert oracle.get("t:wake") == b"not a list"
