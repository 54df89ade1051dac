"""steadfetch chaos suite: real Redis behind real Toxiproxy, faults, workloads and checkers.

Modelled on Jepsen; the parts share nothing but the recorded history:

- :mod:`chaos.env`: the real components (local processes or Docker containers), one ``Stack``;
- :mod:`chaos.workload`: the worker under test (the real ``steadfetch run`` binary), the
  recording handler app, and a steady producer over a direct connection;
- :mod:`chaos.nemesis`: the faults, each recorded as ``fault-start``/``fault-stop``, always healed;
- :mod:`chaos.history`: the operations (invoke, ok, fail, info);
- :mod:`chaos.checkers`: pure functions from a history to a verdict (valid, invalid, unknown);
- :mod:`chaos.scenarios`: the catalogue; :mod:`chaos.runner` runs one scenario in one environment;
- :mod:`chaos.report`, :mod:`chaos.timeline`, :mod:`chaos.cli`: tables, JUnit/JSON, live view,
  ``steadfetch chaos list|run``.
"""

import os

#: Running under CI (``CI=1|true|yes``, what CI services set): a missing real component fails
#: instead of skipping, and a skipped scenario counts as failed. The one definition, read by
#: ``tests/fixtures.py`` and ``chaos.cli``; it lives here because importing ``chaos`` is light.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
