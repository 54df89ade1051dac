"""The side-by-side peers benchmark (``scripts/dev bench peers``); see ``bench_peers.py``.

- ``venvs``: one virtualenv per Python peer at pinned versions, created once under
  ``.artifacts/peers/`` and reused;
- ``procs``: child processes started in their own session, sampled through ``/proc`` (RSS and CPU
  of the whole process tree) and stopped by pid, always;
- ``peers``: what differs per peer (its CLI, its queue key, how its own bookkeeping says a job is
  done);
- ``results``: pure aggregation (medians, min-max, ratios) and the printed table;
- ``apps/``: the peer-side scripts, run with each peer's own interpreter (stdlib + that peer only).
"""
