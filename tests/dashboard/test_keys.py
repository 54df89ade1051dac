"""Key reading on a real pseudo-terminal: cbreak while inside, settings restored after."""

from __future__ import annotations

import asyncio
import io
import os
import termios
from collections.abc import Iterator

import pytest

from steadfetch.worker.dashboard.keys import cbreak_keys


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """(master fd, the slave side as a text stream) of a fresh pseudo-terminal."""
    master, slave = os.openpty()
    stream = open(slave, encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    try:
        yield master, stream
    finally:
        stream.close()
        os.close(master)


async def test_keys_arrive_one_by_one_and_the_terminal_is_restored(
    pty_pair: tuple[int, io.TextIOWrapper],
) -> None:
    master, stream = pty_pair
    before = termios.tcgetattr(stream.fileno())
    assert before[3] & termios.ICANON
    seen: list[str] = []
    got_q = asyncio.Event()

    def on_key(char: str) -> None:
        seen.append(char)
        if char == "q":
            got_q.set()

    with cbreak_keys(on_key, stream) as reading:
        assert reading
        inside = termios.tcgetattr(stream.fileno())
        assert not inside[3] & termios.ICANON and not inside[3] & termios.ECHO
        os.write(master, b"xq")  # no newline: only cbreak mode delivers these at once
        async with asyncio.timeout(5):
            await got_q.wait()
    assert seen == ["x", "q"]
    assert termios.tcgetattr(stream.fileno()) == before


async def test_restored_when_the_block_fails(pty_pair: tuple[int, io.TextIOWrapper]) -> None:
    _, stream = pty_pair
    before = termios.tcgetattr(stream.fileno())
    with pytest.raises(RuntimeError), cbreak_keys(lambda _: None, stream):
        raise RuntimeError("boom")
    assert termios.tcgetattr(stream.fileno()) == before


async def test_not_a_terminal_reads_nothing() -> None:
    with cbreak_keys(lambda _: None, io.StringIO()) as reading:
        assert not reading
