"""A throwaway ``redis-server`` for ``steadfetch demo``: free port, no persistence, gone after.

The process management is ``worker.redis_server.RedisServer`` (the one implementation, shared
with the chaos suite); this adds only the demo's temporary-directory name and a polite SIGTERM on
exit (no data to keep, but a clean shutdown leaves no warning in the user's terminal).
"""

from __future__ import annotations

from steadfetch.worker.redis_server import RedisNotFound, RedisServer, free_port

__all__ = ["RedisNotFound", "ThrowawayRedis", "free_port"]


class ThrowawayRedis(RedisServer):
    """The demo's Redis: PATH lookup (``RedisNotFound`` says how to get one), SIGTERM on exit."""

    def __init__(self) -> None:
        super().__init__(dir_prefix="steadfetch-demo-")
        self.find_binary()  # fail before anything starts, with the install hint

    def __exit__(self, *exc: object) -> None:
        self.stop(5.0)
        self.close()
