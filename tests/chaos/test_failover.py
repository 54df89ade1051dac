"""The failover checker on hand-made histories: Redis's losses told apart from the worker's."""

from __future__ import annotations

from typing import Any

from steadfetch.chaos.checkers import check_failover_loss, check_lost
from steadfetch.chaos.history import Op

OLD, NEW = "old-replid", "new-replid"


def _history(*, durability: str = "", replicated_up_to: int = 1000) -> list[Op]:
    """Four acknowledged jobs: a (offset 500) and b (900) ran; c (900) never ran although the
    new primary had it; d (1500) never ran and the new primary never had it."""
    ops: list[Op] = []
    for t, (job, offset) in enumerate((("a", 500), ("b", 900), ("c", 900), ("d", 1500))):
        where: dict[str, Any] = {"replid": OLD, "offset": offset, "durability": durability}
        ops.append(Op(float(t), "producer", "enqueue", "invoke", {"job_id": job}))
        ops.append(Op(float(t), "producer", "enqueue", "ok", {"job_id": job, **where}))
    ops.append(
        Op(
            10.0,
            "nemesis",
            "failover",
            "ok",
            {
                "old_primary": "127.0.0.1:1",
                "new_primary": "127.0.0.1:2",
                "replid2": OLD,
                "second_repl_offset": replicated_up_to,
                "new_replid": NEW,
            },
        )
    )
    ops += [Op(11.0, "worker-1", "execute", "ok", {"job_id": job}) for job in ("a", "b")]
    return ops


def test_a_job_acked_beyond_the_replicated_offset_is_the_failovers_and_the_rest_the_workers() -> (
    None
):
    lost = check_lost(_history())
    assert lost.valid is False  # c was replicated and never ran: the worker lost it
    assert lost.details["lost"] == 1 and lost.details["lost_ids"] == ["c"]
    assert lost.details["lost_by_failover_ids"] == ["d"]
    verdict = check_failover_loss(_history())
    assert verdict.valid is True  # without durability Redis may drop d
    assert (verdict.details["lost_by_failover"], verdict.details["lost_by_worker"]) == (1, 1)
    assert verdict.details["examples"] == {
        "d": {"acked_at_offset": 1500, "new_primary_had_up_to": 1000}
    }


def test_only_failover_losses_leave_lost_valid_and_saying_so() -> None:
    history = [op for op in _history() if op.value.get("job_id") != "c"]
    lost = check_lost(history)
    assert lost.valid is True
    assert "1 of 3 lost by the failover" in lost.summary


def test_with_durability_a_failover_loss_fails_the_run() -> None:
    verdict = check_failover_loss(_history(durability="replicas=1,timeout=500ms"))
    assert verdict.valid is False
    assert "durability on: none may be lost" in verdict.summary


def test_without_evidence_every_loss_is_the_workers() -> None:
    history = [op for op in _history() if op.f != "failover"]
    assert check_lost(history).details["lost"] == 2
    assert check_failover_loss(history).summary == "no failover in this run"


def test_an_ack_whose_offset_could_not_be_read_after_one_beyond_is_the_failovers() -> None:
    """The primary died right after acknowledging e: INFO failed, so e carries no offset; d,
    acknowledged before it on the same primary, was already beyond what the new primary had."""
    history = _history()
    history.insert(-2, Op(4.0, "producer", "enqueue", "ok", {"job_id": "e", "error": "gone"}))
    lost = check_lost(history)
    assert lost.details["lost_by_failover_ids"] == ["d", "e"]
    examples = check_failover_loss(history).details["examples"]
    assert examples["e"]["inferred_from"] == "d"
    # Once an ack came from the new primary, a later ack without offset proves nothing.
    history.insert(-3, Op(3.5, "producer", "enqueue", "ok", {"job_id": "x", "replid": NEW}))
    assert "e" not in check_lost(history).details["lost_by_failover_ids"]
