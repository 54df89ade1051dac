"""One dead-letter entry shape (issue 13): built once in Python (fetcher/deadletter.py) and once
in Lua (fetcher/lua/_dead_letter_entry.lua, put in front of every script that dead-letters).

Each script's dead-letter path is provoked for real against a redis-server, and its entry is
compared with the Python one: the same fields, the same kinds of values.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from typing import Any

import pytest
import redis

from steadfetch.fetcher import RedisConnection, deadletter
from steadfetch.fetcher.adoption import ADOPT_READ
from steadfetch.fetcher.cluster import PROMOTE_QUEUE, RECOVER_QUEUE
from steadfetch.fetcher.registry import ORPHANS
from steadfetch.fetcher.scripts import FETCH, PROMOTE, RECOVER, SNIPPETS, LuaScript, calls

LUA = resources.files("steadfetch.fetcher").joinpath("lua")
DEAD = "t:dead"
BIG = "x" * 64  # over the oversize limit of 8 bytes the calls below pass
SCRIPTS = {"fetch": FETCH, "adopt_read": ADOPT_READ, "promote": PROMOTE, "recover": RECOVER,
           "orphans": ORPHANS, "promote_queue": PROMOTE_QUEUE,
           "recover_queue": RECOVER_QUEUE}  # fmt: skip
#: Scripts that reach the dead-letter snippet only through give_back_list, never using it: their
#: queue key is checked first (requeue_processing refuses a key of another type).
GIVE_BACK_ONLY = {"requeue_processing"}


def snippet(function: str = "dead_letter_entry") -> str:
    return LUA.joinpath(f"{dict(SNIPPETS)[function]}.lua").read_text()


def test_no_script_builds_an_entry_of_its_own() -> None:
    """Only the snippet spells the entry's fields; every script that dead-letters calls it,
    itself or through a snippet (give_back_list)."""
    for path in LUA.iterdir():
        text = path.read_text()
        if path.name == f"{dict(SNIPPETS)['dead_letter_entry']}.lua":
            continue
        assert "failed_at" not in text and "traceback" not in text, f"{path.name} builds one"
        if not path.name.startswith("_"):
            calls = "dead_letter_entry(" in LuaScript.load(path.stem).source
            assert calls == (path.stem in SCRIPTS or path.stem in GIVE_BACK_ONLY), path.name


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_snippet_is_in_front_of_each_script_that_calls_it(name: str) -> None:
    script = SCRIPTS[name]
    body = LUA.joinpath(f"{name}.lua").read_text()
    assert script.source.endswith(body) and snippet() in script.source.removesuffix(body)
    assert script.source.count("local function dead_letter_entry(") == 1  # included once
    assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()  # the SHA covers all
    assert snippet() not in LuaScript.load("ack").source  # nothing added where it is not used


def test_snippets_come_in_order_each_once_and_only_where_called() -> None:
    """A snippet calls only earlier ones (so it is defined after what it calls), and a script
    gets exactly the snippets it calls, directly or through another snippet."""
    functions = [function for function, _ in SNIPPETS]
    for i, function in enumerate(functions):
        later = [f for f in functions[i + 1 :] if calls(snippet(function), f)]
        assert later == [], f"{function} calls {later}, listed after it"
    for path in LUA.glob("[!_]*.lua"):
        source = LuaScript.load(path.stem).source
        included = [f for f in functions if snippet(f) in source]
        assert source == "".join(snippet(f) for f in included) + path.read_text(), path.name
        reached = path.read_text()
        for function in reversed(functions):
            if calls(reached, function):
                reached += snippet(function)
        assert included == [f for f in functions if calls(reached, f)], path.name
    prelude = snippet("redis.call")  # every script that calls Redis gets it, first
    assert all(LuaScript.load(p.stem).source.startswith(prelude) for p in LUA.glob("[!_]*.lua"))
    assert snippet("holds") in LuaScript.load("requeue_processing").source


async def provoke_each(conn: RedisConnection, oracle: redis.Redis) -> dict[str, dict[str, Any]]:
    """Run each script's dead-letter path once; its entry, by script name."""
    now = str(time.time())
    entries: dict[str, dict[str, Any]] = {}

    async def run(name: str, keys: list[str], args: list[Any]) -> None:
        await conn.execute(name, SCRIPTS[name].bind(keys, args), write=True)
        [raw] = oracle.lrange(DEAD, 0, -1)
        oracle.delete(DEAD)
        entries[name] = json.loads(raw)

    oracle.rpush("t:q", BIG)  # fetch: a payload over the limit never leaves Redis
    await run("fetch", ["t:q", "t:p", DEAD], [10, 1 << 20, 8, now, "w1", "reliable"])
    oracle.rpush("t:p", BIG)  # adoption: an orphan over the limit
    args = [0, 100, 1 << 20, 8, "t:q", now, "w1", "exceeds the limit of 8"]
    await run("adopt_read", ["t:p", DEAD], args)
    oracle.zadd("t:sched", {json.dumps({"id": "j"}): 0})  # promotion: names no queue
    await run("promote", ["t:sched", DEAD], [now, 10, "t:wake:", 16, "t:", "resque:"])
    # Recovery and the orphan sweep: a dead worker's jobs whose queue key is not a list.
    oracle.set("t:q2", "not a list")
    oracle.sadd("t:workers", "w2")
    oracle.sadd("t:wq:w2", "t:q2")
    oracle.rpush("t:proc:w2:t:q2", BIG)
    args = ["t:hb:", "t:wq:", "t:proc:", "t:wake:", 16, "w1", "t:lease:", now]
    await run("recover", ["t:workers", DEAD], args)
    oracle.rpush("t:p3", BIG)
    keys = ["t:p3", "t:q2", "t:hb:w3", "t:lease:w3", "t:workers", "t:wake:t:q2", DEAD]
    await run("orphans", keys, ["w3", 16, now])
    # The Redis Cluster variants, one queue's slot each (here on a plain Redis: same scripts).
    oracle.zadd("t:sched2", {json.dumps({"id": "k"}): 0})  # names no queue
    await run("promote_queue", ["t:sched2", "t:q4", "t:wake:t:q4", DEAD], [now, 10, 16])
    oracle.rpush("t:p5", BIG)
    keys = ["t:p5", "t:q2", "t:wake:t:q2", DEAD, "t:lease:w5"]
    await run("recover_queue", keys, ["w5", 16, now, "w1"])
    return entries


async def test_every_path_writes_the_entry_python_writes(
    conn: RedisConnection, oracle: redis.Redis
) -> None:
    python = json.loads(deadletter.entry(queue_key="t:q", raw=BIG.encode(), reason="r"))
    kinds = {key: type(value) for key, value in python.items()}
    entries = await provoke_each(conn, oracle)
    assert sorted(entries) == sorted(SCRIPTS)
    for name, entry in entries.items():
        assert entry.keys() == python.keys(), name
        if name.startswith("promote"):
            assert json.loads(entry["raw"])["id"] in ("j", "k"), name
        else:
            assert entry["raw"] == BIG, name
        assert entry["error"] is None and entry["traceback"] is None and entry["attempts"] == 0
        assert isinstance(entry["failed_at"], int | float) and entry["failed_at"] > 0, name
        assert isinstance(entry["reason"], str) and isinstance(entry["queue"], str), name
        assert isinstance(entry["worker_id"], str | type(None)), name
        assert {k: type(v) for k, v in entry.items() if k not in ("failed_at", "worker_id")} == {
            k: v for k, v in kinds.items() if k not in ("failed_at", "worker_id")
        }, name
    assert entries["fetch"]["worker_id"] == entries["adopt_read"]["worker_id"] == "w1"
    assert entries["recover"]["worker_id"] == entries["recover_queue"]["worker_id"] == "w1"
    assert entries["promote"]["worker_id"] is None and entries["orphans"]["worker_id"] is None
    assert entries["promote_queue"]["worker_id"] is None
    assert entries["recover"]["queue"] == entries["orphans"]["queue"] == "t:q2"
    assert entries["recover_queue"]["queue"] == "t:q2"
