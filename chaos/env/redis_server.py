"""The chaos suite's ``redis-server`` child: ``worker.redis_server.RedisServer`` with its lookup.

Only the binary lookup differs (``$STEADFETCH_REDIS_SERVER``, the project's ``bin/``, then
``PATH``; a missing one raises ``ComponentMissing``, which tests turn into a skip outside CI). The
process management itself has one home, ``worker/redis_server.py``.
"""

from __future__ import annotations

from steadfetch.chaos.env.binaries import redis_server_binary
from steadfetch.worker.redis_server import RedisServer as _ChildRedisServer
from steadfetch.worker.redis_server import resp_ping

__all__ = ["RedisServer", "resp_ping"]


class RedisServer(_ChildRedisServer):
    """A ``redis-server`` child found where the chaos suite looks for its components."""

    def find_binary(self) -> str:
        return redis_server_binary()
