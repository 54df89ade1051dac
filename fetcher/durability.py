"""Connection layer.

Durability on demand: a write is confirmed by ``WAIT`` / ``WAITAOF`` before it counts.

Redis replicates asynchronously and writes the AOF in the background: a job it acknowledged can
be lost by a failover (the replica that takes over had not received it) or a power loss (not yet
fsynced). With a :class:`Durability`, the connection owner runs every write the caller marks
(enqueue, ack, retry, dead-letter) and then, on the same connection, asks Redis to confirm it:

- ``replicas=N``: ``WAIT N timeout``: N replicas received the write;
- ``aof``: ``WAITAOF 1 0 timeout``: fsynced to the primary's AOF (Redis >= 7.2, appendonly yes);
- ``aof,replicas=N``: ``WAITAOF 1 N timeout``: fsynced locally and on N replicas' AOF.

A write not confirmed within ``timeout`` raises :class:`DurabilityNotConfirmedError`, whose reply
code ``NOTCONFIRMED`` the classification table (:mod:`fetcher.failures`) lists as an outage: the
write (which Redis did perform) is retried under the one retry policy until confirmed, or until
a one-shot call's deadline. ``WAIT`` is no consensus: a confirmed write can still be lost when
the failover promotes a replica that did not confirm it (Jepsen on Redis); what it removes is
the loss of writes that no replica had received yet.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from steadfetch.fetcher.errors import ConfigurationError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


class DurabilityNotConfirmedError(ResponseError):
    """``WAIT``/``WAITAOF`` returned fewer confirmations than asked for within the timeout.

    Made to read like a Redis error reply (``NOTCONFIRMED ...``) so the one classification table
    decides what happens to it."""


@dataclass(frozen=True)
class Durability:
    """What a write must reach before it counts (see the module docstring)."""

    replicas: int = 0
    aof: bool = False
    timeout: float = 1.0  # seconds Redis waits for the confirmations

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")
        if not self.aof and self.replicas == 0:
            raise ValueError("durability needs replicas=N (N >= 1) or aof")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0, got {self.timeout}")

    def __str__(self) -> str:
        parts = (["aof"] if self.aof else []) + (
            [f"replicas={self.replicas}"] * (self.replicas > 0)
        )
        return ",".join([*parts, f"timeout={round(self.timeout * 1000)}ms"])

    def command(self) -> list[str | int]:
        """The confirming command: ``WAIT N ms`` or ``WAITAOF 1 N ms``."""
        timeout_ms = max(1, round(self.timeout * 1000))
        if self.aof:
            return ["WAITAOF", 1, self.replicas, timeout_ms]
        return ["WAIT", self.replicas, timeout_ms]

    async def confirm(self, client: Redis, *, endpoint: str = "", operation: str = "") -> None:
        """Ask Redis, on the connection that ran the write, to confirm it; raise when it did not.

        ``client`` must be bound to that one connection (``Redis.client()``): ``WAIT`` counts the
        replication offset of its own connection's last write."""
        try:
            reply: Any = await client.execute_command(*self.command())  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            reply = exc
        self.check(reply, endpoint=endpoint, operation=operation)

    def check(self, reply: Any, *, endpoint: str = "", operation: str = "") -> None:
        """Judge the reply to :meth:`command` (an exception when Redis refused it). A server
        that cannot give the confirmation asked for at all (no ``WAITAOF``, or its AOF off)
        raises ConfigurationError naming ``endpoint``, ``operation`` and the fix: waiting would
        never help. Too few confirmations raise :class:`DurabilityNotConfirmedError`."""
        if isinstance(reply, ResponseError):
            if self.aof and (fix := self._aof_fix(str(reply))) is not None:
                raise ConfigurationError(
                    f"Redis {endpoint} refused {operation}: {fix} (the server said: {reply})",
                    endpoint=endpoint,
                    operation=operation,
                ) from reply
            raise reply
        if isinstance(reply, BaseException):  # a cluster pipeline's lost WAIT: the connection
            raise reply  # broke between the write and its WAIT (an outage; the write is redone)
        timeout_ms = self.command()[-1]
        if self.aof:
            local, replicas = (int(n) for n in reply)
            if local >= 1 and replicas >= self.replicas:
                return
            got = f"local AOF {local}/1, replica AOFs {replicas}/{self.replicas}"
            if replicas < self.replicas:
                got += "; a replica with appendonly no never confirms"
        else:
            confirmed = int(reply)
            if confirmed >= self.replicas:
                return
            got = f"{confirmed} of {self.replicas} replica(s)"
        raise DurabilityNotConfirmedError(
            f"NOTCONFIRMED the write was performed but not confirmed within {timeout_ms} ms "
            f"({got}; --durability {self})"
        )

    def _aof_fix(self, reply: str) -> str | None:
        """What to do when ``WAITAOF`` was refused with ``reply`` (None: not a refusal that
        says the server cannot confirm an AOF write; the classification table decides)."""
        if "appendonly" in reply.lower():  # "... numlocal is set but appendonly is disabled"
            return (
                f"--durability {self} needs appendonly yes on this server (WAITAOF confirms an "
                "fsync of its AOF, which is off): CONFIG SET appendonly yes and set it in "
                "redis.conf, or use --durability replicas=N"
            )
        if "unknown command" in reply.lower():
            return (
                f"--durability {self} needs WAITAOF, which this server lacks (Redis < 7.2, or "
                "the command renamed or disabled): use Redis >= 7.2 or Valkey, or --durability "
                "replicas=N"
            )
        return None


def parse_durability(text: str) -> Durability:
    """``replicas=1,timeout=500ms``, ``aof``, ``aof,replicas=1,timeout=2s`` (timeout: s or ms;
    default 1 s). Raises ValueError saying what is wrong."""
    replicas, aof, timeout = 0, False, 1.0
    for part in (p.strip() for p in text.split(",")):
        name, _, value = part.partition("=")
        if name == "aof" and not value:
            aof = True
        elif name == "replicas" and value.isdigit():
            replicas = int(value)
        elif name == "timeout" and (match := _DURATION.match(value)):
            number, unit = float(match.group(1)), match.group(2)
            timeout = number / 1000 if unit == "ms" else number
        else:
            raise ValueError(
                f"durability {text!r}: cannot read {part!r}; use replicas=N, aof, timeout=500ms "
                "(e.g. 'replicas=1,timeout=500ms' or 'aof')"
            )
    return Durability(replicas=replicas, aof=aof, timeout=timeout)
