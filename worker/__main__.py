"""``python -m steadfetch.worker`` is ``steadfetch``."""

import sys

from steadfetch.worker.cli import main

sys.exit(main())
