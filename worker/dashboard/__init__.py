"""Live diagnostics: the worker's rich dashboard and the cluster view ``steadfetch top``.

``render`` holds the pure renderers both share; ``live`` the in-worker view; ``top`` the
cluster view. Nothing here imports ``redis``: ``top`` reads Redis through ``fetcher``.
"""

from steadfetch.worker.dashboard.live import LiveDashboard
from steadfetch.worker.dashboard.top import run_top, run_top_async

__all__ = ["LiveDashboard", "run_top", "run_top_async"]
