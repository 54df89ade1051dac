"""steadfetch: a Redis job worker that does not lock up, leak, or lose jobs.

The one import name; the public API is imported from here::

    from steadfetch import App, Producer, SyncProducer

The parts live beneath it: ``steadfetch.fetcher`` (the only code that talks to Redis),
``steadfetch.worker`` (the worker and the ``steadfetch`` binary) and ``steadfetch.chaos`` (the
chaos suite). In the repository they are the top-level folders ``fetcher/``, ``worker/`` and
``chaos/``, mapped beneath this name by ``pyproject.toml``: nothing steadfetch ships is importable
under a name that a user's own ``worker.py``, ``fetcher.py`` or ``chaos.py`` could shadow.
This folder holds only this module. The public API is the fetcher's and the worker's
(``__all__`` of each, checked by ``tests/worker/test_import_names.py``).
"""

from steadfetch import fetcher as _fetcher
from steadfetch.fetcher import *  # noqa: F403 (the fetcher's public API, listed there once)
from steadfetch.worker import App, Task, __version__

__all__ = ["App", "Task", "__version__"]
__all__ += _fetcher.__all__
