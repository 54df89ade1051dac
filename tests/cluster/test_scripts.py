"""Every key a script that runs on a cluster touches is declared in KEYS (a static read of the
Lua sources): a key built inside a script from a prefix would land in some other slot, which a
cluster refuses (CROSSSLOT) or, worse, silently serves from the wrong node."""

from __future__ import annotations

import re
from pathlib import Path

from steadfetch import fetcher
from steadfetch.fetcher.unique import RELEASE

LUA = Path(fetcher.__file__).parent / "lua"
#: Scripts that build key names from prefixes; they never run on a cluster (docs/CONTRACTS.md).
SINGLE_REDIS_ONLY = {"recover", "promote"}
#: Read by hand: a function parameter that every call site fills from KEYS.
REVIEWED = {
    ("enqueue", "TYPE key"),  # refuse_unless(check[1], ...): checks are built from KEYS only
}
#: Commands whose first argument is not a key.
KEYLESS = {"TIME", "INFO"}
_CALL = re.compile(r"redis\.(?:p?call)\(\s*'(\w+)'\s*,\s*([^,)]+)")
_ALIAS = re.compile(r"^[ \t]*(?:local[ \t]+)?([\w \t,]+?)[ \t]*=[ \t]*([^\n]+)", re.M)


def undeclared(source: str) -> list[str]:
    """``COMMAND key-expression`` for every call whose key is not ``KEYS[...]`` nor a local
    bound to one (``local key = KEYS[k]``, ``for _, key in ipairs(KEYS)``)."""
    aliases = set()
    for names, value in _ALIAS.findall(source):
        targets = [n.strip() for n in names.split(",")]
        values = [v.strip() for v in value.split(",")]
        for target, expr in zip(targets, values, strict=False):
            if expr.startswith("KEYS["):
                aliases.add(target)
    aliases |= set(re.findall(r"for\s+_,\s*(\w+)\s+in\s+ipairs\(KEYS\)", source))
    bad = []
    for command, key in _CALL.findall(source):
        key = key.strip()
        if command.upper() in KEYLESS or key.startswith("KEYS[") or key in aliases:
            continue
        bad.append(f"{command} {key}")
    return bad


def test_the_check_finds_a_key_built_from_a_prefix() -> None:
    assert undeclared("redis.call('RPUSH', ARGV[3] .. q, '1')") == ["RPUSH ARGV[3] .. q"]
    assert undeclared("local wake = KEYS[2 + n]\nredis.call('RPUSH', wake, '1')") == []


def test_every_script_that_runs_on_a_cluster_declares_its_keys() -> None:
    sources = {path.stem: path.read_text() for path in sorted(LUA.glob("*.lua"))}
    sources["unique_release"] = RELEASE.source
    found = {
        name: bad
        for name, source in sources.items()
        if name not in SINGLE_REDIS_ONLY
        and (bad := [call for call in undeclared(source) if (name, call) not in REVIEWED])
    }
    assert found == {}
    for name in SINGLE_REDIS_ONLY:  # the exemption is for a reason, not a stale entry
        assert undeclared(sources[name]), name
