"""Queue protocol.

The Lua scripts (``fetcher/lua/*.lua``) and one way to run them: EVALSHA, loading on NOSCRIPT.

A restarted Redis has forgotten every script; the NOSCRIPT reply is handled here by running the
script again by its source (EVAL), which also caches it for the next EVALSHA. Unlike "SCRIPT
LOAD, then EVALSHA", that cannot race a ``SCRIPT FLUSH`` landing in between (the chaos scenario
``script-flush-storm`` flushes every 50 ms): EVAL never answers NOSCRIPT. Should a NOSCRIPT still
come through, :mod:`fetcher.failures` classifies it RELOAD_SCRIPT and the connection owner
retries it as one outage attempt, so it never reaches the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

#: Bound on each wake list: tokens beyond this many are trimmed (losing a token loses no job).
WAKE_BOUND = 16


@dataclass(frozen=True)
class LuaScript:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> LuaScript:
        """``fetcher/lua/NAME.lua``."""
        return cls.from_source(
            name, resources.files("fetcher").joinpath(f"lua/{name}.lua").read_text()
        )

    @classmethod
    def from_source(cls, name: str, source: str) -> LuaScript:
        return cls(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())

    async def __call__(self, client: Redis, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    def bind(self, keys: list[str], args: list[Any]) -> Callable[[Redis], Awaitable[Any]]:
        """``fn(client)`` running this script with these keys and args (for ``execute``)."""
        return lambda client: self(client, keys, args)


ACK = LuaScript.load("ack")
FETCH = LuaScript.load("fetch")  # reliable and fast mode (pills: one script, one bound)
SETTLE = LuaScript.load("settle")
REQUEUE = LuaScript.load("requeue")
REQUEUE_PROCESSING = LuaScript.load("requeue_processing")
RECOVER = LuaScript.load("recover")
PROMOTE = LuaScript.load("promote")
