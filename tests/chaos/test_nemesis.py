"""A fault heals even when the scenario fails mid-fault (against the real stack)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from steadfetch.chaos.env import Stack
from steadfetch.chaos.history import History
from steadfetch.chaos.nemesis import Cut, Target, Toxic, run_fault


class Boom(Exception):
    pass


@dataclass(frozen=True)
class FailingCut(Cut):
    async def hold(self, t: Target) -> None:
        raise Boom("the scenario failed while the link was cut")


@dataclass(frozen=True)
class FailingBlackHole(Toxic):
    async def hold(self, t: Target) -> None:
        raise Boom("the scenario failed inside the black hole")


class Bare:
    """Just what these faults touch: the stack and the history."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.history = History()
        self.rng = random.Random(0)


@pytest.mark.parametrize(
    "fault",
    [
        FailingCut("cut", "cut, then the scenario fails"),
        FailingBlackHole(
            "hole",
            "black hole, then the scenario fails",
            toxic="timeout",
            attributes={"timeout": 0},
        ),
        FailingBlackHole(
            "soft",
            "soft-healed black hole, then the scenario fails",
            toxic="timeout",
            attributes={"timeout": 0},
            soft_heal=True,
        ),
    ],
    ids=lambda f: f.name,
)
def test_a_failing_scenario_still_heals_and_records_the_stop(stack: Stack, fault: Toxic) -> None:
    target = Bare(stack)
    with pytest.raises(Boom):
        asyncio.run(run_fault(fault, target))  # type: ignore[arg-type]
    ops = target.history.ops()
    assert [(op.f, op.type) for op in ops] == [("fault-start", "ok"), ("fault-stop", "ok")]
    assert stack.proxy.enabled
    if isinstance(fault, Toxic) and fault.soft_heal:
        assert [t["toxicity"] for t in stack.proxy.toxics()] == [0]  # the runner removes it
        stack.heal()
    assert stack.proxy.toxics() == []
