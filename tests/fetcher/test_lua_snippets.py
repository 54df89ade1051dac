"""The shared Lua snippets (fetcher/lua/_*.lua) behave the same in every script that uses them,
against a real redis-server: a broken wake key costs a wake-up, never the jobs or an error; a
WRONGTYPE inside any script names the command and the key
(fetcher/lua/_wrongtype_names_the_key.lua), every other error reply is Redis's own."""

from __future__ import annotations

import hashlib

import pytest
import redis
from redis import exceptions as rx

from steadfetch.fetcher import RedisConnection, WrongTypeError
from steadfetch.fetcher.adoption import GIVE_BACK
from steadfetch.fetcher.failures import reply_code
from steadfetch.fetcher.scripts import SETTLE, LuaScript


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


async def test_a_wrongtype_inside_a_script_names_the_command_and_the_key(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    """Redis's own reply names neither ("Operation against a key holding the wrong kind of
    value ... on @user_script:17"); a script touches many keys. Failed before: no key named."""
    oracle.rpush("t:p", "raw")
    oracle.set("t:sched", "not a zset")
    keys = ["t:p", "t:sched", "t:sched", "t:lease"]
    args = ["raw", "zadd", 1, "retry", "1", "", ""]
    with pytest.raises(WrongTypeError) as info:
        await conn.execute("retrying job j", SETTLE.bind(keys, args), write=True)
    assert "WRONGTYPE ZADD refused: key t:sched holds a string" in str(info.value)
    assert info.value.operation == "retrying job j" and "retrying job j" in str(info.value)
    assert oracle.lrange("t:p", 0, -1) == [b"raw"]  # refused before anything moved


@pytest.mark.parametrize("broken", ["t:from", "t:to"])
async def test_a_two_key_command_names_the_key_of_the_wrong_type(
    conn: RedisConnection, oracle: redis.Redis, broken: str
) -> None:
    oracle.rpush("t:from" if broken == "t:to" else "t:to", "job")
    oracle.sadd(broken, "member")
    move = LuaScript.from_source(
        "move", "return redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')"
    )
    with pytest.raises(WrongTypeError, match=f"LMOVE refused: key {broken} holds a set"):
        await conn.execute("moving", move.bind(["t:from", "t:to"], []), write=True)


async def test_other_error_replies_inside_a_script_are_unchanged(oracle: redis.Redis) -> None:
    """Only a WRONGTYPE is reworded: OOM, a bad argument or an unknown command keep Redis's
    own text (and prefix, which fetcher/failures.py classifies), bar the script's SHA."""
    bodies = {
        "return redis.call('SET', KEYS[1], 'x')": "OOM",  # under maxmemory 1
        "return redis.call('SET', KEYS[1], 'x', 'PX', 'soon')": "ERR",
        "return redis.call('NOSUCHCOMMAND', KEYS[1])": "ERR",
        "return redis.call('GET')": "ERR",
    }
    seen = {}
    for body in bodies:
        oracle.config_set("maxmemory", 1 if seen == {} else 0)
        replies = []
        for source in (body, LuaScript.from_source("probe", body).source):
            with pytest.raises(rx.ResponseError) as info:
                oracle.eval(source, 1, "k")
            replies.append((type(info.value), str(info.value).split(" script: ")[0]))
        assert replies[0] == replies[1], body
        seen[body] = reply_code(info.value)
    assert seen == bodies
