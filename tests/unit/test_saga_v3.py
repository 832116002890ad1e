"""Saga v3 (the latest) and the second half it hands a parked order to, on dapr_saga's harness: v2's
business process, except that an order waiting for approval waits on its actor (no workflow, no
durable timer), and its decision, timeout or cancel starts `order_saga_decided`."""

from __future__ import annotations

import pytest
from dapr_saga import StepResult as KitResult

from order_service.activities import ServiceUnavailable
from order_service.messages import DecidedInput, Gate
from tests.helpers.saga_harness import (
    fails,
    published,
    records,
    run_saga,
    saga_input,
    timeline,
    undo_calls,
    updates,
    world,
)

LARGE = 150_000
DECIDED = "order_saga_decided"


def decided(outcome: str, approver: str = "ann", *lines: str) -> DecidedInput:
    return DecidedInput(saga=saga_input(*(lines or ("a",)), price=LARGE), outcome=outcome, approver=approver)


def test_a_small_order_runs_as_in_v2():
    run = run_saga(world(), saga_input("a", "b"))
    assert run.result == "COMPLETED" and run.version == "v3"
    assert run.activities() == ["reserve_lines", "authorize_payment", "capture_payment", "create_shipment",
                                "finish_order"]
    assert published(run) == ["completed"]


def test_a_large_order_parks_at_the_gate_with_no_timer_and_no_wait():
    run = run_saga(world(), saga_input("a", price=LARGE))
    assert run.result == "AWAITING_APPROVAL" and run.status == "COMPLETED"
    assert run.activities() == ["reserve_lines", "authorize_payment", "update_order"]
    (park,) = [r for r in records(run) if r.status == "AWAITING_APPROVAL"]
    assert park.model_extra["parks_until"].startswith("20") and published(run) == ["approval_requested"]
    assert not [e for e in run.history if e.HasField("timerCreated")], "a parked saga created a durable timer"


def test_a_cancel_accepted_before_the_gate_unwinds_the_first_half():
    def refuse_the_gate(update):
        return Gate(cancel_requested=any(r.status == "AWAITING_APPROVAL" for r in update.records))

    run = run_saga(world(update_order=refuse_the_gate), saga_input("a", price=LARGE))
    assert run.result == "CANCELLED"
    assert undo_calls(run) == ["void_payment", "release_lines"]


def test_an_approved_order_is_charged_shipped_and_completed_by_the_second_half():
    run = run_saga(world(), decided("approve"), workflow=DECIDED)
    assert run.result == "COMPLETED" and run.version == "v1"
    assert run.activities() == ["capture_payment", "create_shipment", "finish_order"]
    assert ("approval", "APPROVED") in timeline(run) and published(run) == ["completed"]


@pytest.mark.parametrize("outcome, final, reason", [
    ("reject", "FAILED", "APPROVAL_REJECTED"), ("timeout", "FAILED", "APPROVAL_TIMEOUT"), ("cancel", "CANCELLED", ""),
])
def test_a_wait_that_ends_otherwise_undoes_what_the_first_half_did(outcome, final, reason):
    run = run_saga(world(), decided(outcome), workflow=DECIDED)
    assert run.result == final
    assert undo_calls(run) == ["void_payment", "release_lines"]
    assert [r.reason for r in records(run) if r.status == final] == [reason]


def test_a_cancel_accepted_after_the_timeout_was_taken_ends_cancelled():
    run = run_saga(world(update_order=lambda update: Gate(cancel_requested=True)), decided("timeout"),
                   workflow=DECIDED)
    assert run.result == "CANCELLED"


def test_a_shipment_that_fails_after_approval_undoes_the_first_halfs_steps_too():
    run = run_saga(world(create_shipment=fails(ServiceUnavailable("down"))), decided("approve"), workflow=DECIDED)
    assert run.result == "FAILED"
    assert undo_calls(run) == ["cancel_shipment", "refund_payment", "void_payment", "release_lines"]


def test_a_cancel_accepted_before_the_capture_gate_stops_the_charge():
    run = run_saga(world(capture_payment=lambda payment: KitResult.refused()), decided("approve"), workflow=DECIDED)
    assert run.result == "CANCELLED" and "create_shipment" not in run.activities()
    assert [u for u in updates(run) if u.event and u.event.type == "cancelled"]
