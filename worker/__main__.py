"""``python -m worker`` is ``steadfetch``."""

import sys

from worker.cli import main

sys.exit(main())
