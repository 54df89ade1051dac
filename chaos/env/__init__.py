"""Real components for tests and chaos runs: redis-server, toxiproxy-server, or both as containers.

Two environments expose one shape, :class:`chaos.env.stack.Stack`: a Redis reachable directly
(for checkers) and through a Toxiproxy proxy (for the system under test), plus the controls that
faults need (restart, SIGKILL, SIGSTOP/SIGCONT, toxics, cutting the link).
"""

from steadfetch.chaos.env.binaries import ComponentMissing
from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.stack import Stack, start_stack
from steadfetch.chaos.env.toxiproxy import Proxy, ToxiproxyAPI, ToxiproxyServer

__all__ = [
    "ComponentMissing",
    "Proxy",
    "RedisServer",
    "Stack",
    "ToxiproxyAPI",
    "ToxiproxyServer",
    "start_stack",
]
