"""Mapping driver exceptions, once: is it retryable, and how to say what happened.

A Redis failure is described as ``ExceptionClass message``, where the class and message come
from the innermost OS-level cause when there is one (``ConnectionResetError [Errno 104]
Connection reset by peer``), never a bare class name: an empty message gets a description.
"""

from __future__ import annotations

import asyncio
import ssl

from redis import exceptions as rx

from fetcher.errors import ConfigurationError, WrongTypeError

# Error replies that mean "this node cannot serve you right now", during loading or failover.
_TRANSIENT_REPLY_PREFIXES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")

_EMPTY_MESSAGES: dict[type[BaseException], str] = {
    asyncio.IncompleteReadError: "connection closed by server",
    EOFError: "connection closed by server",
    ConnectionResetError: "connection reset by peer",
    ConnectionRefusedError: "connection refused",
    TimeoutError: "no reply within the read timeout",
    rx.TimeoutError: "no reply within the read timeout",
    rx.ConnectionError: "connection closed by server",
}


def is_retryable(exc: BaseException) -> bool:
    """Connection-class failures, where waiting and reconnecting can help."""
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError):
        return False
    if isinstance(root_cause(exc), ssl.SSLCertVerificationError):
        return False  # an OSError, but waiting will not make the certificate trusted
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError | EOFError):
        return True  # includes BusyLoadingError (LOADING) and Sentinel's MasterNotFoundError
    if isinstance(exc, asyncio.IncompleteReadError):
        return True
    if isinstance(exc, rx.ReadOnlyError | rx.ClusterDownError | rx.TryAgainError):
        return True  # READONLY; MASTERDOWN (redis-py's MasterDownError drops the prefix)
    if isinstance(exc, rx.ResponseError):
        return str(exc).upper().startswith(_TRANSIENT_REPLY_PREFIXES)
    return False


def needs_new_master(exc: BaseException) -> bool:
    """A reply that says this node is no (longer the) master: drop pooled connections."""
    if isinstance(exc, rx.ReadOnlyError | rx.MasterDownError):
        return True
    return isinstance(exc, rx.ResponseError) and str(exc).upper().startswith(
        ("READONLY", "MASTERDOWN")
    )


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


def describe(exc: BaseException) -> str:
    """``ConnectionResetError [Errno 104] Connection reset by peer``: class plus message."""
    cause = root_cause(exc)
    message = str(cause).strip()
    if isinstance(cause, asyncio.IncompleteReadError):
        message = ""
    if not message:
        message = next(
            (text for cls, text in _EMPTY_MESSAGES.items() if isinstance(cause, cls)),
            "no details given by the driver",
        )
    return f"{type(cause).__name__} {message}"


def fatal_error(exc: BaseException, endpoint: str, operation: str) -> ConfigurationError:
    """A ConfigurationError naming what to fix, for a failure that waiting cannot cure."""
    name, text = type(exc).__name__, str(exc).strip() or type(exc).__name__
    upper = text.upper()
    cause = root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        name, text = type(cause).__name__, str(cause)
        hint = "give the CA that signed the server certificate as ?ssl_ca_certs=/path/ca.pem"
    elif isinstance(exc, rx.AuthenticationError) or upper.startswith(("WRONGPASS", "NOAUTH")):
        hint = "check the password (and user name) in the Redis URL"
    elif isinstance(exc, rx.NoPermissionError | rx.AuthorizationError) or "NOPERM" in upper:
        hint = "grant this Redis user the commands and keys steadfetch needs"
    elif "UNKNOWN COMMAND" in upper:
        hint = "this Redis server lacks a command steadfetch needs; use Redis >= 6.2"
    elif "WRONGTYPE" in upper:
        hint = "a steadfetch key holds a value of the wrong type; check the key prefix"
    elif any(mark in upper for mark in ("@USER_SCRIPT", "COMPILING SCRIPT", "RUNNING SCRIPT")):
        hint = "a steadfetch Lua script failed; this is a bug, please report it"
    else:
        hint = "this failure is not retried; fix the cause and restart"
    message = f"Redis {endpoint} refused {operation}: {name} {text} ({hint})"
    if "WRONGTYPE" in upper:
        return WrongTypeError(message, endpoint=endpoint, operation=operation)
    return ConfigurationError(message, endpoint=endpoint, operation=operation)
