"""Faults the saga cannot judge, on dapr_saga's harness: the order's record that cannot be written
(issue 18, hole 2), a bug in a step (hole 9), a cancel whose event never reached the saga (hole
4). The saga never fails its workflow with stock reserved and credit held, never blames a fault on
the customer's order with a business reason, and never undoes what cannot be undone.
"""

from __future__ import annotations

import pytest

from order_service.activities import EventNotPublished, OrderNotUpdated, ServiceUnavailable
from order_service.domain import Ending, OrderRequest, PlannedCall, Unfinished
from order_service.messages import Gate, OrderUpdate, RetryInput, ShipmentCall
from order_service.sagas.v2 import CANCEL_BEATS_TIMEOUT_PATCH, FAULTS_PATCH
from tests.helpers.saga_harness import (
    RETRY,
    actor_down_for,
    ending_of,
    fails,
    pinned,
    records,
    saga_input,
    timeline,
    undo_calls,
    world,
)

run_saga = pinned("v2")  # v2's tests (the latest, v3, parks at the approval gate)
LARGE = 150_000  # cents per line: above the approval threshold of saga_input


def v2_undos(run):
    return undo_calls(run, "release_lines", "void_payment", "refund_payment", "cancel_shipment")


# ---- hole 2: the order's record that cannot be written --------------------------------------

def test_an_approval_gate_the_actor_never_opened_undoes_everything_and_needs_attention():
    run = run_saga(world(update_order=actor_down_for(1)), saga_input("a", price=LARGE))
    assert run.result == "NEEDS_ATTENTION"
    assert v2_undos(run) == ["void_payment", "release_lines"]
    assert "capture_payment" not in run.activities()
    ending = ending_of(run)
    assert ending.records[-1].status == "NEEDS_ATTENTION"
    assert ending.unfinished.calls == []  # everything was undone
    assert (ending.unfinished.ending.status, ending.unfinished.ending.reason) == ("FAILED", "INTERNAL_ERROR")
    assert "the order's record could not be written" in ending.records[-1].detail


def test_an_actor_that_stays_away_leaves_the_ending_to_the_orders_checkup():
    """Every update fails: the saga still undoes what it did, ends its workflow cleanly, and
    leaves what the order never heard as its custom status (the order's check-up records it)."""
    run = run_saga(world(update_order=actor_down_for(10_000)), saga_input("a", price=LARGE))
    assert run.result == "NEEDS_ATTENTION"
    assert v2_undos(run) == ["void_payment", "release_lines"]
    left = OrderUpdate.model_validate_json(run.custom_status)
    assert [r.status for r in left.records if r.status] == ["AWAITING_APPROVAL", "COMPENSATING", "NEEDS_ATTENTION"]
    assert left.unfinished.ending.reason == "INTERNAL_ERROR"
    assert left.event.type == "needs_attention"
    # The ending was retried for longer than the other updates (ENDING_RETRY: about an hour).
    assert run.called("update_order")[-1].attempts == 70 and run.called("update_order")[0].attempts == 12


def test_a_gate_the_actor_never_opened_in_saga_v1():
    run = run_saga(world(update_order=actor_down_for(1)), saga_input("a", price=LARGE), version="v1")
    assert run.result == "NEEDS_ATTENTION"
    assert undo_calls(run, "release_stock", "void_payment") == ["void_payment", "release_stock a"]


def test_an_ending_the_actor_refused_does_not_undo_a_shipment():
    """Past the shipment nothing is undone: a completion that could not be recorded (after the
    commit) leaves the commit to do and the order COMPLETED once it is."""
    run = run_saga(world(finish_order=fails(OrderNotUpdated("UNAVAILABLE: actor host not found"))), saga_input("a"))
    assert run.result == "NEEDS_ATTENTION"
    assert v2_undos(run) == []
    unfinished = ending_of(run).unfinished
    assert [c.activity for c in unfinished.calls] == ["commit_lines"]
    assert unfinished.ending.status == "COMPLETED"


def test_a_note_the_actor_refused_does_not_stop_the_saga():
    """Only an update that moves the order into a status is a gate: a timeline note that did
    not take (here, after the broker refused `completed`) is left for the check-up."""
    run = run_saga(world(finish_order=fails(EventNotPublished("completed: nats: no servers available")),
                         update_order=actor_down_for(1)), saga_input("a"))
    assert run.result == "COMPLETED"
    assert v2_undos(run) == []
    assert ("event completed", "UNPUBLISHED") in [(r.step, r.outcome) for r in
                                                  OrderUpdate.model_validate_json(run.custom_status).records]


def test_a_retry_stopped_by_the_actor_leaves_all_of_its_calls():
    ship = ShipmentCall(order_id="o-1", customer_id="c-1").model_dump(mode="json")
    unfinished = Unfinished(calls=[PlannedCall(step="undo ship", activity="cancel_shipment", input=ship)],
                            ending=Ending(status="FAILED", reason="SHIPPING_FAILED"), resume_status="COMPENSATING")
    order = OrderRequest(order_id="o-1", customer_id="c-1", items=[{"sku": "a", "quantity": 1, "unit_price_cents": 1}])
    run = run_saga(world(update_order=actor_down_for(1)), RetryInput(order=order, unfinished=unfinished, attempt=1),
                   workflow=RETRY)
    assert run.result == "NEEDS_ATTENTION"
    assert "cancel_shipment" not in run.activities()
    assert ending_of(run).unfinished == unfinished


def test_a_saga_in_flight_before_the_patch_fails_as_it_did():
    run = run_saga(world(update_order=actor_down_for(1)), saga_input("a", price=LARGE), without_patches={FAULTS_PATCH})
    assert run.status == "FAILED" and "actor host not found" in run.failure


# ---- hole 9: a bug in a step ------------------------------------------------------------------

@pytest.mark.parametrize("step, reason_before", [
    ("reserve_lines", "INVENTORY_UNAVAILABLE"), ("authorize_payment", "PAYMENT_UNAVAILABLE"),
    ("capture_payment", "PAYMENT_UNAVAILABLE"), ("create_shipment", "SHIPPING_FAILED"),
])
def test_a_bug_in_a_step_is_undone_and_left_to_a_person_not_blamed_on_the_order(step, reason_before):
    bug = fails(TypeError("'NoneType' object is not subscriptable"))
    run = run_saga(world(**{step: bug}), saga_input("a"))
    assert run.result == "NEEDS_ATTENTION"
    ending = ending_of(run)
    assert (ending.unfinished.ending.status, ending.unfinished.ending.reason) == ("FAILED", "INTERNAL_ERROR")
    assert "TypeError" in ending.records[-1].detail and step in ending.records[-1].detail
    assert "release_lines" in v2_undos(run)  # a step that raised may have happened: undone
    before = run_saga(world(**{step: bug}), saga_input("a"), without_patches={FAULTS_PATCH})
    assert before.result == "FAILED"
    assert [r.reason for r in records(before) if r.status == "FAILED"] == [reason_before]


def test_a_service_that_is_away_still_fails_the_order_with_its_reason():
    run = run_saga(world(capture_payment=fails(ServiceUnavailable("capture: UNAVAILABLE: connection refused"))),
                   saga_input("a"))
    assert run.result == "FAILED"
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["PAYMENT_UNAVAILABLE"]
    assert v2_undos(run) == ["refund_payment", "void_payment", "release_lines"]


# ---- hole 4: a cancel that never reached the saga ---------------------------------------------

def test_a_cancel_accepted_before_the_approval_timed_out_ends_the_order_cancelled():
    def update_order(update: OrderUpdate):
        # The actor accepted a cancel while the saga waited; its event never came.
        return Gate(cancel_requested=any(r.status == "COMPENSATING" for r in update.records))

    run = run_saga(world(update_order=update_order), saga_input("a", price=LARGE))
    assert run.result == "CANCELLED"
    assert ("finish", "CANCELLED") in timeline(run)
    before = run_saga(world(update_order=update_order), saga_input("a", price=LARGE),
                      without_patches={CANCEL_BEATS_TIMEOUT_PATCH})
    assert before.result == "FAILED"


def test_a_timed_out_approval_without_a_cancel_still_fails_with_approval_timeout():
    run = run_saga(world(), saga_input("a", price=LARGE))
    assert run.result == "FAILED"
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["APPROVAL_TIMEOUT"]


def test_results_are_unchanged_for_the_happy_path():
    run = run_saga(world(), saga_input("a"))
    assert run.result == "COMPLETED"
    assert not run.custom_status
    assert FAULTS_PATCH not in run.patches  # a saga without faults records no patch
