"""An App for tests/worker/test_base_exceptions.py: handlers that raise BaseException
subclasses other than Exception (async and in a thread)."""

from __future__ import annotations

import asyncio

from steadfetch.worker import App
from tests.worker.apps import record

app = App("base-exceptions")


class NotAnException(BaseException):
    """A library's own BaseException subclass (gevent's GreenletExit, trio's Cancelled...)."""


RAISED: dict[str, type[BaseException]] = {
    "generator_exit": GeneratorExit,
    "not_an_exception": NotAnException,
    "system_exit": SystemExit,
    "keyboard_interrupt": KeyboardInterrupt,
    "cancelled": asyncio.CancelledError,
}


@app.task
async def raises(name: str) -> None:
    record("start", token=f"async-{name}")
    raise RAISED[name](name)


@app.task
def raises_in_thread(name: str) -> None:
    record("start", token=f"sync-{name}")
    raise RAISED[name](name)


@app.task
async def ok(token: str) -> None:
    record("end", token=token)
