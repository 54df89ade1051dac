"""The chaos workload: a recording handler app, a steady producer, and the worker under test.

- :mod:`chaos.workload.app`: the ``worker.App`` the real ``steadfetch run`` loads; its ``record``
  task appends each execution to a local file, where no Redis fault can reach it.
- :mod:`chaos.workload.records`: reads that file incrementally into history operations.
- :mod:`chaos.workload.producer`: enqueues unique-id jobs at a steady rate over a direct
  connection (not through the proxy), recording each enqueue as invoke then ok/fail/info.
- :mod:`chaos.workload.process`: the ``steadfetch run`` binary as a child process, its log lines,
  memory and exit recorded in the history.
"""
