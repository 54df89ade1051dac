"""steadfetch's worker: a bounded sliding-window async worker and the ``steadfetch`` binary.

Write handlers against :class:`App`; run them with ``steadfetch run module:app``.
"""

from importlib.metadata import PackageNotFoundError, version

from steadfetch.worker.app import App, Task

try:  # one version for --version, heartbeats and /metrics: what pip installed
    __version__ = version("steadfetch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown (not installed)"

__all__ = ["App", "Task", "__version__"]
