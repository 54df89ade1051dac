"""Every key a script that runs on a cluster touches is declared in KEYS (a static read of the
Lua sources): a key built inside a script from a prefix would land in some other slot, which a
cluster refuses (CROSSSLOT) or, worse, silently serves from the wrong node.

Shared snippets (``fetcher/lua/_*.lua``, :data:`fetcher.scripts.SNIPPETS`) take their keys as
parameters: each snippet is checked to touch no key but its parameters, and each call of a
snippet to pass a declared key in those parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from steadfetch import fetcher
from steadfetch.fetcher.scripts import SNIPPETS
from steadfetch.fetcher.unique import RELEASE

LUA = Path(fetcher.__file__).parent / "lua"
#: Scripts that build key names from prefixes; they never run on a cluster (docs/CONTRACTS.md).
SINGLE_REDIS_ONLY = {"recover", "promote"}
#: Read by hand: (script or snippet file, "COMMAND-or-function key-expression").
REVIEWED = {
    ("enqueue", "holds key"),  # refuse_unless(check[1], ...): checks are built from KEYS only
    # Reached only once refuse(q) accepted q: promote_queue's accepts its declared KEYS[2] alone.
    ("_promote_due", "holds q"),
    ("_promote_due", "RPUSH q"),
    # The key of the command that just failed, declared wherever that command's was.
    ("_wrongtype_names_the_key", "TYPE key"),
}
#: Commands whose first argument is not a key.
KEYLESS = {"TIME", "INFO"}
#: Commands whose first two arguments are keys.
TWO_KEYS = {"LMOVE", "RPOPLPUSH", "SMOVE"}
_CALLED = re.compile(r"(?<![\w.])(redis\.p?call|\w+)\(")
_FUNCTION = re.compile(r"local function (\w+)\(([^)]*)\)")
_ALIAS = re.compile(r"^[ \t]*(?:local[ \t]+)?([\w \t,]+?)[ \t]*=[ \t]*([^\n]+)", re.M)


def arguments(source: str, start: int) -> list[str]:
    """The arguments of the call whose ``(`` ends just before ``start``, split at the commas
    outside brackets and strings."""
    args, depth, quote, current = [], 0, "", ""
    for char in source[start:]:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        current += char
    return [*args, current.strip()] if current.strip() or args else args


def keys_passed(source: str, key_params: dict[str, tuple[int, ...]]) -> Iterator[str]:
    """``COMMAND key-expression`` (or ``function key-expression``) for every key a Redis
    command, or a snippet function, receives in ``source``."""
    for match in _CALLED.finditer(source):
        name, args = match.group(1), arguments(source, match.end())
        if name.startswith("redis."):
            if not args or not args[0].startswith("'"):
                continue  # a command named by a variable: the prelude's own redis.pcall
            command = args[0].strip("'").upper()
            positions: tuple[int, ...] = (
                () if command in KEYLESS else (1, 2) if command in TWO_KEYS else (1,)
            )
            name = command
        else:
            positions = tuple(p + 1 for p in key_params.get(name, ()))
            args = ["", *args]
        for position in positions:
            if position < len(args):
                yield f"{name} {args[position]}"


def undeclared(
    source: str,
    key_params: dict[str, tuple[int, ...]] | None = None,
    declared: frozenset[str] = frozenset(),
) -> list[str]:
    """Every key passed in ``source`` that is not ``KEYS[...]``, a local bound to one
    (``local key = KEYS[k]``, ``for _, key in ipairs(KEYS)``) or one of ``declared``."""
    aliases = set(declared)
    for names, value in _ALIAS.findall(source):
        targets = [n.strip() for n in names.split(",")]
        values = [v.strip() for v in value.split(",")]
        for target, expr in zip(targets, values, strict=False):
            if expr.startswith("KEYS["):
                aliases.add(target)
    aliases |= set(re.findall(r"for\s+_,\s*(\w+)\s+in\s+ipairs\(KEYS\)", source))
    return [
        passed
        for passed in keys_passed(source, key_params or {})
        if not (key := passed.split(" ", 1)[1]).startswith("KEYS[") and key not in aliases
    ]


def snippet_key_params() -> dict[str, tuple[int, ...]]:
    """For each snippet function, the positions of the parameters it uses as keys; its other
    keys must be none (a snippet builds no key names)."""
    key_params: dict[str, tuple[int, ...]] = {}
    for function, file in SNIPPETS:
        source = (LUA / f"{file}.lua").read_text()
        params = [p for name, p in _FUNCTION.findall(source) if name == function]
        names = [p.strip() for p in "".join(params).split(",")]  # none: the redis.call prelude
        used = {passed.split(" ", 1)[1] for passed in keys_passed(source, key_params)}
        key_params[function] = tuple(i for i, p in enumerate(names) if p in used)
        bad = undeclared(source, key_params, declared=frozenset(names))
        assert [b for b in bad if (file, b) not in REVIEWED] == [], file
    return key_params


def test_the_check_finds_a_key_built_from_a_prefix() -> None:
    assert undeclared("redis.call('RPUSH', ARGV[3] .. q, '1')") == ["RPUSH ARGV[3] .. q"]
    assert undeclared("local wake = KEYS[2 + n]\nredis.call('RPUSH', wake, '1')") == []
    assert undeclared("redis.call('LMOVE', KEYS[1], 'q:' .. x, 'RIGHT', 'LEFT')") == [
        "LMOVE 'q:' .. x"
    ]
    params = {"wake_up": (0,)}  # a snippet call is checked where its key goes
    assert undeclared("wake_up(ARGV[1] .. q, ARGV[2])", params) == ["wake_up ARGV[1] .. q"]
    assert undeclared("wake_up(KEYS[3], f(ARGV[1], 2))", params) == []


def test_snippets_take_their_keys_as_parameters() -> None:
    key_params = snippet_key_params()
    assert key_params["give_back_list"] == (0, 1, 2, 4)  # processing, queue, wake, dead
    assert key_params["holds"] == (0,) and key_params["wake_up"] == (0,)


def test_every_script_that_runs_on_a_cluster_declares_its_keys() -> None:
    key_params = snippet_key_params()
    sources = {path.stem: path.read_text() for path in sorted(LUA.glob("[!_]*.lua"))}
    sources["unique_release"] = RELEASE.source
    found = {
        name: bad
        for name, source in sources.items()
        if name not in SINGLE_REDIS_ONLY
        and (
            bad := [call for call in undeclared(source, key_params) if (name, call) not in REVIEWED]
        )
    }
    assert found == {}
    for name in SINGLE_REDIS_ONLY:  # the exemption is for a reason, not a stale entry
        assert undeclared(sources[name], key_params), name
