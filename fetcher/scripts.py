"""Queue protocol.

The Lua scripts (``fetcher/lua/*.lua``) and one way to run them: by source (EVAL) the first time
a client runs one, by its SHA (EVALSHA) after that, and by source again on NOSCRIPT.

EVAL caches the script on the server, so the first call costs one round trip, not the two of an
EVALSHA answered NOSCRIPT and retried (on a 300 ms link that was 0.6 s a script at shutdown,
where several scripts run for the first time: the chaos scenario ``sigterm-write-pause``). A
restarted Redis has forgotten every script; the NOSCRIPT reply is handled the same way. Unlike
"SCRIPT LOAD, then EVALSHA", that cannot race a ``SCRIPT FLUSH`` landing in between (the chaos
scenario ``script-flush-storm`` flushes every 50 ms): EVAL never answers NOSCRIPT. Should a
NOSCRIPT still come through, :mod:`fetcher.failures` classifies it RELOAD_SCRIPT and the
connection owner retries it as one outage attempt, so it never reaches the caller.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

#: Bound on each wake list: tokens beyond this many are trimmed (losing a token loses no job).
WAKE_BOUND = 16


#: Lua functions shared by several scripts, in order: (the name a script calls, the file
#: ``fetcher/lua/_FILE.lua`` that defines it). Redis scripts cannot import each other:
#: :meth:`LuaScript.from_source` puts in front of a script every snippet it calls, and every
#: snippet those call, each once and in this order, so each function is written once and the
#: script's SHA covers it. A snippet may call only the snippets listed before it.
SNIPPETS: tuple[tuple[str, str], ...] = (
    ("redis.call", "_wrongtype_names_the_key"),
    ("holds", "_holds"),
    ("reserve_id", "_reserve_id"),
    ("wake_up", "_wake_up"),
    ("queue_refusal", "_queue_refusal"),
    ("dead_letter_entry", "_dead_letter_entry"),
    ("give_back_list", "_give_back_list"),
    ("promote_due", "_promote_due"),
)


def _lua(name: str) -> str:
    return resources.files("steadfetch.fetcher").joinpath(f"lua/{name}.lua").read_text()


def calls(source: str, function: str) -> bool:
    """Whether Lua ``source`` calls ``function`` (``holds(`` but not ``redis.holds(`` nor
    ``upholds(``)."""
    return re.search(rf"(?<![\w.]){re.escape(function)}\(", source) is not None


def with_snippets(body: str) -> str:
    """``body`` behind the snippets it needs (:data:`SNIPPETS`): walked from the last, so a
    snippet that a later snippet calls is found as well."""
    needed: list[str] = []
    text = body
    for function, file in reversed(SNIPPETS):
        if calls(text, function):
            snippet = _lua(file)
            needed.append(snippet)
            text += snippet
    return "".join(reversed(needed)) + body


_SENT: weakref.WeakKeyDictionary[Redis, set[str]] = weakref.WeakKeyDictionary()
"""SHAs each client has run by source: its server has them cached (until a restart or a
SCRIPT FLUSH, answered NOSCRIPT). Bounded by the scripts of this package; gone with the client."""


@dataclass(frozen=True)
class LuaScript:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> LuaScript:
        """``fetcher/lua/NAME.lua``, behind the shared snippets it calls (:data:`SNIPPETS`)."""
        return cls.from_source(name, _lua(name))

    @classmethod
    def from_source(cls, name: str, body: str) -> LuaScript:
        """A script of ``body`` behind the shared snippets it calls (:data:`SNIPPETS`)."""
        source = with_snippets(body)
        return cls(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())

    async def __call__(self, client: Redis, keys: list[str], args: list[Any]) -> Any:
        sent = _SENT.setdefault(client, set())
        if self.sha in sent:
            try:
                return await client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                sent.discard(self.sha)
        result = await client.eval(self.source, len(keys), *keys, *args)
        sent.add(self.sha)
        return result

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
