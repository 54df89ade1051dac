"""steadfetch's worker: a bounded sliding-window async worker and the ``steadfetch`` binary.

Write handlers against :class:`App`; run them with ``steadfetch run module:app``.
"""

from worker.app import App, Task

__all__ = ["App", "Task"]
