"""Single key presses from a terminal, without blocking the event loop.

The terminal is put in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still raises
SIGINT) and its file descriptor is watched by the event loop. The previous terminal settings
are restored on exit, whatever ended the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from typing import IO


@contextlib.contextmanager
def cbreak_keys(on_key: Callable[[str], None], stream: IO[str] | None = None) -> Iterator[bool]:
    """Call ``on_key(char)`` for each key typed on ``stream`` (default stdin) while inside.

    Yields whether keys are being read: False when the stream is not a terminal (then nothing
    is changed). Must be entered from a running event loop.
    """
    stream = sys.stdin if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        yield False
        return
    if not os.isatty(fd):
        yield False
        return
    loop = asyncio.get_running_loop()
    saved = termios.tcgetattr(fd)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # the terminal went away
            loop.remove_reader(fd)
            return
        for char in data.decode(errors="ignore"):
            on_key(char)

    try:
        tty.setcbreak(fd, termios.TCSANOW)
        loop.add_reader(fd, readable)
        yield True
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
