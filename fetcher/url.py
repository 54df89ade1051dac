"""Connection layer.

Parsing a Redis URL into what the connection owner needs, with errors that say what to fix.

Accepted: ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS),
``unix:///path/redis.sock[?db=0&password=...]`` and Sentinel,
``redis+sentinel://[user:password@]h1:26379,h2:26379/service[/db]`` (``rediss+sentinel://`` for
TLS to the master) and Redis Cluster, ``redis+cluster://[user:password@]h1:7000,h2:7001[/]``
(``rediss+cluster://`` for TLS; any reachable node is enough, the client discovers the others;
database 0 only, the one a cluster has). Query parameters: ``db``, ``ssl_cert_reqs``
(none|optional|required), ``ssl_ca_certs``, ``sentinel_password``. The password is kept out of
every text this module makes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from steadfetch.fetcher.errors import ConfigurationError

Kind = Literal["tcp", "unix", "sentinel", "cluster"]
_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
_QUERY_KEYS = {"db", "ssl_cert_reqs", "ssl_ca_certs", "sentinel_password", "password"}
_CERT_REQS = ("none", "optional", "required")


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is and how to authenticate. ``endpoint`` is the loggable text."""

    kind: Kind
    endpoint: str
    db: int = 0
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    nodes: tuple[tuple[str, int], ...] = ()  # Redis Cluster: the startup nodes
    service: str | None = None
    tls: bool = False
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's client (the address part only)."""
        kwargs: dict[str, Any] = {} if self.kind == "cluster" else {"db": self.db}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.kind == "unix":
            kwargs["unix_socket_path"] = self.path
        elif self.kind == "tcp":
            kwargs["host"], kwargs["port"] = self.host, self.port
        if self.tls:
            kwargs["ssl"] = True
            kwargs["ssl_cert_reqs"] = self.ssl_cert_reqs
            if self.ssl_ca_certs:
                kwargs["ssl_ca_certs"] = self.ssl_ca_certs
        return kwargs


def _said(detail: str | list[str], shown: str) -> str:
    """A detail of the URL quoted in an error, when the redacted URL shows it too; otherwise
    a note: a detail that redaction hid (a password holding ``?password=`` inside another
    parameter's value) must not come back through the error."""
    texts = [detail] if isinstance(detail, str) else detail
    if all(text in shown for text in texts):
        return repr(detail)
    return "(not shown: it may hold a piece of a password)"


def _fail(url_text: str, problem: str, fix: str) -> ConfigurationError:
    return ConfigurationError(f"Redis URL {url_text!r} {problem}: {fix}")


# One host[:port] (or [ipv6]:port); Sentinel URLs list several, comma-separated.
_HOST = r"(?:\[[0-9A-Fa-f:.]*\]|[^\s/?#@\[\],:]*)(?::[^\s/?#@\[\],]*)?"
_HOSTS_THEN_END = re.compile(rf"{_HOST}(?:,{_HOST})*(?:[/?]|$)")
# A query parameter starts at "&name=": a password may hold "&" or "#" itself.
_PARAM_SPLIT = re.compile(r"&(?=[A-Za-z_]+=)")
_QUERY_START = re.compile(r"\?[A-Za-z_]+=")
# A password parameter's value runs to the next "&" that starts a parameter this module knows
# (or the end): for redaction a password may hold "&x=" itself, so hide too much, never too little.
_KNOWN_NEXT = "|".join(sorted(_QUERY_KEYS))


def _any_encoding(word: str) -> str:
    """A pattern for ``word`` with any of its characters percent-encoded: a parameter name is
    decoded (``pass%77ord=`` sets the password), so its value is hidden under any spelling
    (either case, as ``PASSWORD=`` is)."""
    return "".join(
        f"(?:{re.escape(char)}|%{ord(char.lower()):02x}|%{ord(char.upper()):02x})" for char in word
    )


_SECRET_PARAM = re.compile(
    rf"((?:^|[?&])(?:{_any_encoding('sentinel_')})?{_any_encoding('password')}=)"
    rf".*?(?=&(?:{_KNOWN_NEXT})=|$)",
    re.S | re.I,
)
_SECRET_KEYS = ("password", "sentinel_password")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986: a "user:p" before "://" is none
# host[:port] (or [ipv6][:port]), comma-separated: what precedes a "/" or "?" in a URL without
# userinfo (a port of digits only, no "@&=": a password's "u:x?..." is none).
_ONE_HOST = r"(?:\[[0-9A-Fa-f:.]*\]|[^\s/?#@\[\],:&=]+)(?::\d+)?"
_AUTHORITY = re.compile(rf"{_ONE_HOST}(?:,{_ONE_HOST})*")


def split_userinfo(rest: str, *, strict: bool = True) -> tuple[str | None, str]:
    """``rest`` (the URL after ``scheme://``) as (userinfo or None, what follows its ``@``).

    The password may hold ``/ @ ? # %`` unencoded, so the ``@`` that ends the userinfo is the
    last one followed by host[:port] and then ``/``, ``?`` or the end, preferring one whose
    userinfo holds no ``/?#``, and never one inside the query (after ``?name=``: a value such as
    ``ssl_ca_certs=/a@b`` may hold an ``@``). ``strict=False`` (for redaction) takes the last such
    ``@`` wherever it is, then the last ``@``: a password may hold ``?x=`` too
    (``redis://:pw?x=y@host/0``), so when unsure the userinfo grows and a redaction hides too
    much rather than too little. :func:`parse_redis_url` refuses a URL on which the two disagree.
    """
    ats = [i for i, char in enumerate(rest) if char == "@"]
    fitting = [i for i in reversed(ats) if _HOSTS_THEN_END.match(rest, i + 1)]
    outside_query = [i for i in fitting if not _QUERY_START.search(rest, 0, i)]
    clean = [i for i in outside_query if not any(c in rest[:i] for c in "/?#")]
    choices = [clean, outside_query] if strict else [fitting, ats[::-1]]
    for candidates in choices:
        if candidates:
            at = candidates[0]
            return rest[:at], rest[at + 1 :]
    return None, rest


def _redaction_split(rest: str) -> tuple[str | None, str, bool]:
    """What :func:`redact_url` hides of ``rest`` (the URL after ``scheme://``): (the userinfo,
    or None; the text after it, query passwords hidden; whether the userinfo is the whole text
    up to the end of a password parameter's value). The last ``@`` that can end a userinfo may
    lie in such a value: when no host and ``?`` precede that value, the userinfo's password
    holds ``&password=`` (or ``?`` too) and everything up to the value's end is secret;
    otherwise the ``@`` is the query password's, and the userinfo is looked for with the query
    passwords hidden."""
    raw_userinfo, _ = split_userinfo(rest, strict=False)
    parsed, _ = split_userinfo(rest)
    for secret in _SECRET_PARAM.finditer(rest) if raw_userinfo is not None else ():
        ats = [len(raw_userinfo or ""), *([] if parsed is None else [len(parsed)])]
        if not any(secret.start() < at < secret.end() for at in ats):
            continue  # neither "@" that could end the userinfo lies in this value
        # The value is the query's when the parsed userinfo (if any), then a host (none: a
        # unix socket path), a path and "?" precede it.
        start = 0 if parsed is None else len(parsed) + 1
        query = rest.find("?", start)
        authority = rest[start:query].split("/")[0]
        in_query = start <= query <= secret.start() and bool(
            _AUTHORITY.fullmatch(authority) or (not authority and rest.startswith("/", start))
        )
        if not in_query:  # hidden up to that value's end, or to the last "@" if it is later
            end = max(secret.end(), len(raw_userinfo or ""))
            after = rest[end:] if end == secret.end() else rest[end + 1 :]
            shown_after = _SECRET_PARAM.sub(r"\1***", after)
            return rest[:end], shown_after if end == secret.end() else "@" + shown_after, True
    userinfo, after = split_userinfo(_SECRET_PARAM.sub(r"\1***", rest), strict=False)
    return userinfo, after, False


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: the one redaction, used wherever a Redis
    URL is printed (error messages, ``--help``, reprs). A password in the query
    (``password=***``, ``sentinel_password=***``) and in the userinfo (``:***@``; a lone name
    before ``@`` is hidden too, as some write the password there), also when it holds
    ``/ @ ? # & %`` or ``&password=`` unencoded: when unsure, it hides too much."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        # No "scheme://" (``redis:/:pw@h``, ``user:pw@h``, ``user:p://w@h``): the URL is
        # refused, and its error line shows it, so whatever precedes the "@" may still be a
        # password: hide it all.
        userinfo, after, whole = _redaction_split(url)
        return after if userinfo is None else ("***" if whole else "***@") + after
    userinfo, after, whole = _redaction_split(rest)
    if userinfo is None:
        return f"{scheme}://{after}"
    if whole:
        return f"{scheme}://***{after}"
    user, has_password, _ = userinfo.partition(":")
    return f"{scheme}://{user}:***@{after}" if has_password else f"{scheme}://***@{after}"


def _parse_query(text: str) -> dict[str, str]:
    """``a=1&password=x&y`` → {"a": "1", "password": "x&y"} (split as :func:`redact_url` does)."""
    query: dict[str, str] = {}
    for item in _PARAM_SPLIT.split(text) if text else []:
        key, _, value = item.partition("=")
        query[unquote(key)] = unquote(value)
    return query


def _refuse_unknown(shown: str, query: dict[str, str]) -> None:
    """Refuse parameters this module does not know. One that follows a password is not named:
    a password holding ``&x=`` unencoded is split there, and ``x`` is a piece of it."""
    keys = list(query)
    first_secret = min((keys.index(k) for k in _SECRET_KEYS if k in query), default=len(keys))
    named = sorted(set(keys[:first_secret]) - _QUERY_KEYS)
    unnamed = set(keys[first_secret:]) - _QUERY_KEYS
    if named:
        raise _fail(
            shown,
            f"has unknown parameter(s) {_said(named, shown)}",
            f"use only {sorted(_QUERY_KEYS)}",
        )
    if unnamed:
        raise _fail(
            shown,
            f"has {len(unnamed)} unknown parameter(s) after a password (not named: a password "
            "holding '&' is split there)",
            f"use only {sorted(_QUERY_KEYS)}, and percent-encode '&' in a password as %26",
        )


def _parse_db(raw: str, shown: str) -> int:
    try:
        db = int(raw)
    except ValueError:
        raise _fail(shown, f"has database {_said(raw, shown)}", "use a number such as /0") from None
    if db < 0:
        raise _fail(shown, f"has database {db}", "use a database number >= 0")
    return db


def _parse_port(raw: str, shown: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise _fail(shown, f"has port {_said(raw, shown)}", "use a number such as :6379") from None
    if not 0 < port < 65536:
        raise _fail(shown, f"has port {port}", "use a port between 1 and 65535")
    return port


def _host_port(item: str, shown: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        return host, _parse_port(rest[1:], shown) if rest.startswith(":") else default_port
    host, sep, port = item.rpartition(":")
    if not sep:
        return item, default_port
    return host, _parse_port(port, shown)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse ``url``; raise ConfigurationError (password redacted) saying what to fix."""
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _SCHEMES:
        raise _fail(
            shown,
            "has no supported scheme",
            f"start it with one of {', '.join(s + '://' for s in _SCHEMES)}",
        )
    creds, after = split_userinfo(rest)
    hidden, _, whole = _redaction_split(rest)
    if whole or creds != hidden:
        # The redaction would hide a different userinfo than the one parsed, so a detail quoted
        # from the parsed URL (its "port", "path" or "parameters") could be a password's piece.
        raise _fail(
            shown,
            "is ambiguous: '@', '?' or '&password=' in it could each end the user name and "
            "password",
            "percent-encode them in the user name, the password and parameter values "
            "('@' as %40, '?' as %3F, '&' as %26)",
        )
    rest = after
    # The query starts at the first "?" (a "/" in it, as in a password value, is the query's).
    before_query, _, query_text = rest.partition("?")
    netloc, _, path = before_query.partition("/")
    tail = path
    query = _parse_query(query_text)
    _refuse_unknown(shown, query)
    username = password = None
    if creds is not None:
        user, has_pw, pw = creds.partition(":")
        username = unquote(user) or None  # redis://name@host names a user, as in redis-py
        password = unquote(pw) if has_pw else None
    password = query.get("password", password)
    tls = scheme.startswith("rediss")
    cert_reqs = query.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in _CERT_REQS:
        raise _fail(
            shown,
            f"has ssl_cert_reqs={_said(cert_reqs, shown)}",
            f"use one of {', '.join(_CERT_REQS)}",
        )
    if not tls and ("ssl_cert_reqs" in query or "ssl_ca_certs" in query):
        raise _fail(shown, "sets TLS options without TLS", "use rediss:// for TLS")
    common: dict[str, Any] = {
        "tls": tls,
        "ssl_cert_reqs": cert_reqs,
        "ssl_ca_certs": query.get("ssl_ca_certs"),
        "username": username,
        "password": password,
    }
    if scheme == "unix":
        return _unix(shown, netloc, tail, query, common)
    if not netloc:
        raise _fail(shown, "has no host", "write it as redis://host:6379/0")
    segments = [s for s in path.split("/") if s]
    if scheme.endswith("+sentinel"):
        return _sentinel(shown, netloc, segments, query, common)
    if scheme.endswith("+cluster"):
        return _cluster(shown, netloc, segments, query, common)
    if len(segments) > 1:
        raise _fail(
            shown,
            f"has path {_said(path, shown)}",
            "only a database number may follow the host, as /0",
        )
    db = _parse_db(segments[0] if segments else query.get("db", "0"), shown)
    host, port = _host_port(netloc, shown, 6379)
    if not host:
        raise _fail(shown, "has no host", "write it as redis://host:6379/0")
    return RedisAddress(
        kind="tcp", endpoint=f"{host}:{port}/{db}", db=db, host=host, port=port, **common
    )


def _unix(
    shown: str, netloc: str, tail: str, query: dict[str, str], common: dict[str, Any]
) -> RedisAddress:
    """``unix:///path/redis.sock?db=0``: the socket path; the database only as a parameter."""
    sock_path = "/" + tail.partition("?")[0] if netloc == "" else ""
    if not sock_path or sock_path == "/":
        raise _fail(shown, "has no socket path", "write it as unix:///path/to/redis.sock?db=0")
    db = _parse_db(query.get("db", "0"), shown)
    return RedisAddress(
        kind="unix", endpoint=f"unix:{sock_path}/{db}", db=db, path=sock_path, **common
    )


def _sentinel(
    shown: str, netloc: str, segments: list[str], query: dict[str, str], common: dict[str, Any]
) -> RedisAddress:
    """``redis+sentinel://h1:26379,h2:26379/service[/db]``: the sentinels (26379 by default),
    the service name, then the database."""
    if not segments:
        raise _fail(
            shown,
            "names no Sentinel service",
            "write it as redis+sentinel://h1:26379,h2:26379/mymaster/0",
        )
    service = unquote(segments[0])
    db = _parse_db(segments[1] if len(segments) > 1 else query.get("db", "0"), shown)
    sentinels = tuple(_host_port(item, shown, 26379) for item in netloc.split(",") if item)
    hosts = ",".join(f"{h}:{p}" for h, p in sentinels)
    return RedisAddress(
        kind="sentinel",
        endpoint=f"sentinel {service}@{hosts}/{db}",
        db=db,
        sentinels=sentinels,
        service=service,
        sentinel_password=query.get("sentinel_password"),
        **common,
    )


def _cluster(
    shown: str, netloc: str, segments: list[str], query: dict[str, str], common: dict[str, Any]
) -> RedisAddress:
    """``redis+cluster://h1:7000,h2:7001/``: the startup nodes; database 0 only."""
    db = _parse_db(segments[0] if segments else query.get("db", "0"), shown)
    if db != 0 or len(segments) > 1:
        raise _fail(
            shown,
            f"names database {_said('/'.join(segments), shown)}",
            "a Redis Cluster has database 0 only: write redis+cluster://h1:7000,h2:7001/",
        )
    if "sentinel_password" in query:
        raise _fail(shown, "sets sentinel_password", "a cluster URL has no sentinels: remove it")
    nodes = tuple(_host_port(item, shown, 6379) for item in netloc.split(","))
    if any(not host for host, _ in nodes):
        raise _fail(
            shown, "has an empty node", "list host:port pairs, as redis+cluster://h1:7000,h2:7001/"
        )
    hosts = ",".join(f"{h}:{p}" for h, p in nodes)
    return RedisAddress(kind="cluster", endpoint=f"cluster {hosts}", nodes=nodes, **common)
