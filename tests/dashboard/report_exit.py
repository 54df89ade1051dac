"""``python -m tests.dashboard.report_exit CMD...``: run CMD in this terminal, then print
``[exit status N]`` and stay, so a test can read the status off the screen.

tmux 3.3a sometimes leaves a pane's exited process unreaped (a zombie, no status), so the
status is reported here instead. Ctrl-C reaches CMD (same process group); this wrapper only
survives it: a Python-level handler, unlike SIG_IGN, is not inherited by CMD.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, lambda *_: None)
    status = subprocess.call(argv)
    print(f"\n[exit status {status}]", flush=True)
    while True:  # stay on screen until the test's tmux server is killed
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1:])
