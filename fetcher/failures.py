"""Connection layer.

Mapping driver exceptions, once: what kind of failure it is, and how to say what happened.

Every Redis error reply is classified by its first word (its prefix: ``OOM``, ``BUSY``,
``WRONGTYPE``...) in one table, :data:`REPLIES`; exceptions that are not replies (a reset socket,
a timeout, an untrusted certificate) by their class. :func:`classify` is the only place that
decides; the connection owner acts on its answer (docs/CONTRACTS.md, "Error classification"):

- ``OUTAGE``: this node cannot serve the command right now; wait, reconnect and retry forever
  (a one-shot call: until its deadline). The worker keeps running what it holds, logs the
  descriptive outage line and reports not ready.
- ``RELOAD_SCRIPT``: the script cache lost our script (``NOSCRIPT``); :mod:`fetcher.scripts`
  runs it again by its source (EVAL, which cannot answer NOSCRIPT); should a NOSCRIPT still come
  through, it is retried as one outage attempt.
- ``JOB``: the reply is about one key's contents (``WRONGTYPE``); raised as
  :class:`fetcher.errors.WrongTypeError`, which a caller owning the key as one job's may catch.
- ``CONFIGURATION``: waiting will not help (auth, ACL, unknown command, script error, bad URL);
  raised at once as :class:`fetcher.errors.ConfigurationError` saying what to fix.

A Redis failure is described as ``ExceptionClass message``, where the class and message come
from the innermost OS-level cause when there is one (``ConnectionResetError [Errno 104]
Connection reset by peer``), never a bare class name: an empty message gets a description, and
a reply whose prefix redis-py stripped gets it back (``OutOfMemoryError OOM command not allowed
...``).
"""

from __future__ import annotations

import ast
import asyncio
import enum
import re
import ssl
from dataclasses import dataclass

from redis import exceptions as rx

from steadfetch.fetcher.errors import ConfigurationError, WrongTypeError


class Failure(enum.Enum):
    """What a failure means for the caller (see the module docstring)."""

    OUTAGE = "outage"
    RELOAD_SCRIPT = "reload script"
    JOB = "job"
    CONFIGURATION = "configuration"


@dataclass(frozen=True)
class Reply:
    """One row of the classification table: the class, whether the pool must be dropped so
    the next connection re-resolves the master (Sentinel), and what the worker does (for the
    docs and the ``ConfigurationError`` hint)."""

    failure: Failure
    action: str
    new_master: bool = False


_OUT = Failure.OUTAGE
_CONF = Failure.CONFIGURATION

#: Every error reply by its first word; anything not listed is :data:`OTHER_REPLY`, except on a
#: connection-level exception (redis-py maps ``ERR max number of clients reached`` to one).
#: docs/CONTRACTS.md mirrors this table and a test keeps the two equal.
REPLIES: dict[str, Reply] = {
    "LOADING": Reply(_OUT, "retried: the server is loading its dataset"),
    "BUSY": Reply(_OUT, "retried: another client's script or function is running"),
    "MISCONF": Reply(_OUT, "retried: writes refused after a failed background save"),
    "OOM": Reply(_OUT, "retried: writes refused at maxmemory (noeviction)"),
    "TRYAGAIN": Reply(_OUT, "retried: a cluster slot is being resharded"),
    "CLUSTERDOWN": Reply(_OUT, "retried: the cluster cannot serve the slot"),
    "MASTERDOWN": Reply(_OUT, "retried on a fresh connection: the replica lost its master", True),
    "READONLY": Reply(_OUT, "retried on a fresh connection: the node became a replica", True),
    "NOREPLICAS": Reply(_OUT, "retried: too few replicas for min-replicas-to-write"),
    "NOTCONFIRMED": Reply(_OUT, "retried: WAIT/WAITAOF did not confirm a write (--durability)"),
    "UNBLOCKED": Reply(_OUT, "retried: a blocking call was unblocked (failover, CLIENT UNBLOCK)"),
    "EXECABORT": Reply(_OUT, "retried: MULTI discarded (its cause, when known, decides instead)"),
    "NOSCRIPT": Reply(
        Failure.RELOAD_SCRIPT, "run again by its source (EVAL); should it come again: retried"
    ),
    "WRONGTYPE": Reply(
        Failure.JOB, "WrongTypeError: a job's key: that job is dead-lettered; else exit 2"
    ),
    "NOAUTH": Reply(_CONF, "exit 2: this Redis requires a password; put it in the URL"),
    "WRONGPASS": Reply(_CONF, "exit 2: wrong user name or password in the URL"),
    "NOPERM": Reply(_CONF, "exit 2: the ACL user lacks a command or key"),
    "MOVED": Reply(_CONF, "exit 2: a Redis Cluster node: use a redis+cluster:// URL"),
    "ASK": Reply(_CONF, "exit 2: a Redis Cluster node: use a redis+cluster:// URL"),
    "CROSSSLOT": Reply(_CONF, "exit 2: keys of one call in several slots (a bug: report it)"),
}
#: Any other reply (``ERR unknown command``, a syntax or a script error).
OTHER_REPLY = Reply(_CONF, "exit 2: unknown command (Redis < 6.2), syntax or script error")

# redis-py's own classes for replies, whose prefix it strips (kept in ``status_code`` when it
# made the exception from a reply). Subclasses first: MasterDownError is a ClusterDownError.
_CLASS_CODES: tuple[tuple[type[rx.RedisError], str], ...] = (
    (rx.BusyLoadingError, "LOADING"),
    (rx.OutOfMemoryError, "OOM"),
    (rx.ReadOnlyError, "READONLY"),
    (rx.MasterDownError, "MASTERDOWN"),
    (rx.ClusterDownError, "CLUSTERDOWN"),
    (rx.TryAgainError, "TRYAGAIN"),
    (rx.ExecAbortError, "EXECABORT"),
    (rx.NoScriptError, "NOSCRIPT"),
    (rx.NoPermissionError, "NOPERM"),
    (rx.MovedError, "MOVED"),
    (rx.AskError, "ASK"),
    (rx.ClusterCrossSlotError, "CROSSSLOT"),
)

# redis-py's cluster client raises these (RedisClusterException) while the cluster changes.
_CLUSTER_OUTAGES = (
    "Redis Cluster cannot be connected",
    "All slots are not covered",
    "startup_nodes could not agree",
)

# redis-py rewrites a pipeline's error as "Command # 2 (SET k v) of pipeline caused error: ...".
_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.S)
_CODE = re.compile(r"^[A-Z][A-Z_]*(?=\s|$)")

_EMPTY_MESSAGES: dict[type[BaseException], str] = {
    asyncio.IncompleteReadError: "connection closed by server",
    EOFError: "connection closed by server",
    ConnectionResetError: "connection reset by peer",
    ConnectionRefusedError: "connection refused",
    TimeoutError: "no reply within the read timeout",
    rx.TimeoutError: "no reply within the read timeout",
    rx.ConnectionError: "connection closed by server",
}


def _unannotated(text: str) -> str:
    """The reply's own text without redis-py's pipeline note. The asyncio client writes the
    reply as a tuple repr (``...caused error: ('MISCONF Errors writing',)``), the sync one as is."""
    rest = _PIPELINE_NOTE.sub("", text)
    if rest is not text and rest.startswith("("):
        try:
            value = ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            return rest
        if isinstance(value, tuple) and value and isinstance(value[0], str):
            return value[0]
    return rest


def reply_code(exc: BaseException) -> str | None:
    """The error reply's first word (``OOM``), or None when ``exc`` is not a Redis reply.

    redis-py strips the prefix of the replies it maps to a class (``OutOfMemoryError``) and keeps
    it in ``status_code``; others keep it in the message, perhaps behind a pipeline note.
    """
    if not isinstance(exc, rx.RedisError):
        return None
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    for cls, class_code in _CLASS_CODES:
        if isinstance(exc, cls):
            return class_code
    if not isinstance(exc, rx.ResponseError):
        return None
    match = _CODE.match(_unannotated(str(exc)))
    return match.group(0) if match else None


def _classify_reply(exc: BaseException) -> Reply | None:
    code = reply_code(exc)
    if code is None:
        return None
    reply = REPLIES.get(code)
    if reply is None and isinstance(exc, rx.ConnectionError):
        return None  # e.g. "ERR max number of clients reached": a connection-level refusal
    return reply or OTHER_REPLY


def classify(exc: BaseException) -> Failure | None:
    """The one classification; ``None``: not a Redis failure at all (a bug: let it propagate)."""
    if isinstance(root_cause(exc), ssl.SSLCertVerificationError):
        return Failure.CONFIGURATION  # an OSError, but waiting will not make the cert trusted
    reply = _classify_reply(exc)
    if reply is not None:
        return reply.failure
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError):
        return Failure.CONFIGURATION
    if isinstance(exc, rx.SlotNotCoveredError | rx.RedisClusterException):
        # redis-py's cluster client, not a reply: a slot nobody serves, or no node reachable, is
        # a cluster in transition (a failover); a cross-slot call or a non-cluster node is not.
        if isinstance(exc, rx.SlotNotCoveredError) or str(exc).startswith(_CLUSTER_OUTAGES):
            return Failure.OUTAGE
        return Failure.CONFIGURATION
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError | EOFError):
        return Failure.OUTAGE  # includes Sentinel's MasterNotFoundError
    if isinstance(exc, asyncio.IncompleteReadError):
        return Failure.OUTAGE
    if isinstance(exc, rx.RedisError):
        return Failure.CONFIGURATION  # DataError, InvalidResponse...: not cured by waiting
    return None


def is_retryable(exc: BaseException) -> bool:
    """Retried by the connection owner: an outage, or a script cache lost again after reload."""
    return classify(exc) in (Failure.OUTAGE, Failure.RELOAD_SCRIPT)


def needs_new_master(exc: BaseException) -> bool:
    """A reply that says this node is no (longer the) master: drop pooled connections."""
    reply = _classify_reply(exc)
    return reply is not None and reply.new_master


def is_closed_by_peer(exc: BaseException) -> bool:
    """The server closed the connection (EOF, reset, broken pipe), as it does to an idle one."""
    cause = root_cause(exc)
    if isinstance(cause, ConnectionResetError | BrokenPipeError | EOFError):
        return True
    if isinstance(cause, asyncio.IncompleteReadError):
        return True
    return type(cause) is rx.ConnectionError and "closed by server" in str(cause).lower()


def root_cause(exc: BaseException) -> BaseException:
    """The innermost OS-level exception in the cause chain, or ``exc`` itself."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | EOFError | asyncio.IncompleteReadError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _message(exc: BaseException) -> str:
    """``exc``'s text with its reply prefix put back when redis-py stripped it."""
    text = _unannotated(str(exc).strip())
    code = reply_code(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}".strip()
    return text


def describe(exc: BaseException) -> str:
    """``ConnectionResetError [Errno 104] Connection reset by peer``: class plus message."""
    cause = root_cause(exc)
    message = _message(cause)
    if isinstance(cause, asyncio.IncompleteReadError):
        message = ""
    if not message:
        message = next(
            (text for cls, text in _EMPTY_MESSAGES.items() if isinstance(cause, cls)),
            "no details given by the driver",
        )
    return f"{type(cause).__name__} {message}"


def fatal_error(
    exc: BaseException, endpoint: str, operation: str, *, has_password: bool = True
) -> ConfigurationError:
    """A ConfigurationError naming what to fix, for a failure that waiting cannot cure.

    ``has_password``: whether the URL gave one; a ``NOAUTH`` reply then means a password is
    missing, and the message says so first, before the server's own text.
    """
    note = _PIPELINE_NOTE.match(str(exc).strip())  # which command of a pipeline failed
    text = (note.group(0) if note else "") + _message(exc)
    name, text = type(exc).__name__, text or type(exc).__name__
    code = reply_code(exc) or ""
    upper = text.upper()
    cause = root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        name, text = type(cause).__name__, str(cause)
        hint = "give the CA that signed the server certificate as ?ssl_ca_certs=/path/ca.pem"
    elif code == "NOAUTH" and not has_password:
        message = (
            f"Redis {endpoint} refused {operation}: this Redis requires a password: put it in "
            f"the URL, as redis://:PASSWORD@host:port/db or ?password= ({name} {text})"
        )
        return ConfigurationError(message, endpoint=endpoint, operation=operation)
    elif isinstance(exc, rx.AuthenticationError) or code in ("WRONGPASS", "NOAUTH"):
        hint = "check the password (and user name) in the Redis URL"
    elif isinstance(exc, rx.NoPermissionError | rx.AuthorizationError) or code == "NOPERM":
        hint = "grant this Redis user the commands and keys steadfetch needs"
    elif "UNKNOWN COMMAND" in upper:
        hint = (
            "this Redis server lacks a command steadfetch needs: renamed or disabled "
            "(rename-command in its config, or an ACL), or a server older than Redis 6.2"
        )
    elif code == "WRONGTYPE":
        hint = "a steadfetch key holds a value of the wrong type; check the key prefix"
    elif code in ("MOVED", "ASK"):
        hint = "this is a Redis Cluster node: connect with redis+cluster://host:port,host:port/"
    elif code == "CROSSSLOT" or "must map to the same key slot" in text:
        hint = "one call touched keys in several cluster slots; this is a bug, please report it"
    elif any(mark in upper for mark in ("@USER_SCRIPT", "COMPILING SCRIPT", "RUNNING SCRIPT")):
        hint = "a steadfetch Lua script failed; this is a bug, please report it"
    else:
        hint = "this failure is not retried; fix the cause and restart"
    message = f"Redis {endpoint} refused {operation}: {name} {text} ({hint})"
    if code == "WRONGTYPE":
        return WrongTypeError(message, endpoint=endpoint, operation=operation)
    return ConfigurationError(message, endpoint=endpoint, operation=operation)
