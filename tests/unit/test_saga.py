"""Saga v1's decisions and compensation order, on dapr_saga's harness (no sidecar, virtual clock,
the SDK's own executor). v1 is still registered for the sagas started on it."""

from __future__ import annotations

import pytest
from dapr_saga import StepResult as KitResult

from order_service.activities import EventNotPublished, OrderNotUpdated, ServiceUnavailable
from order_service.domain import Ending, PlannedCall, Unfinished
from order_service.messages import Gate, RetryInput, ShipmentCall, StepResult, StockBatch, StockLine
from order_service.sagas.v1 import FAULTS_PATCH
from tests.helpers.saga_harness import (
    HANG,
    OK,
    RETRY,
    business_activities,
    fails,
    needs_attention_update,
    published,
    records,
    run_saga,
    saga_input,
    timeline,
    undo_calls,
    updates,
    world,
)

CANCELLED_FIRST = KitResult.refused()
DOWN = fails(ServiceUnavailable("still down"))


def v1(services, saga, **kw):
    return run_saga(services, saga, version="v1", **kw)


def test_happy_path_runs_the_steps_in_business_order():
    run = v1(world(), saga_input("a", "b"))
    assert run.result == "COMPLETED"
    assert business_activities(run) == [
        "reserve_stock", "authorize_payment", "capture_payment", "create_shipment", "commit_stock"]
    assert timeline(run) == [
        ("reserve", "STARTED"), ("reserve a", "DONE"), ("reserve b", "DONE"), ("authorize", "DONE"),
        ("capture", "STARTED"), ("capture", "DONE"), ("ship", "STARTED"), ("ship", "DONE"),
        ("commit a", "DONE"), ("commit b", "DONE"), ("complete", "COMPLETED"),
    ]
    assert published(run) == ["placed", "completed"]
    assert undo_calls(run) == []


def test_the_timeline_is_written_in_one_update_per_status_change():
    run = v1(world(), saga_input("a", "b", "c"))
    # One activity per service call (the lines of a batch go together); the capture and the
    # shipment carry their own status change; the announcement and the ending are updates:
    # 7 workflow activities whatever the width, 4 actor updates instead of one per entry.
    assert len(run.calls) == 7
    assert [[r.status for r in u.records if r.status] for u in updates(run)] == [
        ["RESERVING"], ["CHARGING"], ["SHIPPING"], ["COMPLETED"]]


def test_reservations_the_hold_and_the_announcement_start_together():
    run = v1(world(reserve_stock=lambda line: HANG, authorize_payment=lambda p: HANG), saga_input("a", "b"),
             finish=False)
    with pytest.raises(AssertionError, match="can never happen"):
        run.finish()
    assert run.activities() == ["reserve_stock", "authorize_payment", "update_order"]
    assert published(run) == ["placed"]


def test_out_of_stock_releases_what_was_reserved_and_voids_the_hold_in_reverse():
    short = StepResult(ok=False, reason="OUT_OF_STOCK")
    run = v1(world(reserve_stock=lambda line: short if line.sku == "b" else OK), saga_input("a", "b", "c"))
    assert run.result == "FAILED"
    # b said a definite no: nothing to undo there. The hold was started last: undone first.
    assert undo_calls(run) == ["void_payment", "release_stock a c"]
    assert ("finish", "FAILED") in timeline(run)
    assert "capture_payment" not in business_activities(run)


def test_payment_declined_is_not_voided_but_stock_is_released():
    run = v1(world(authorize_payment=lambda p: StepResult(ok=False, reason="PAYMENT_DECLINED")), saga_input("a"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["release_stock a"]
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["PAYMENT_DECLINED"]


def test_a_step_that_timed_out_is_still_undone_because_it_may_land_later():
    timed_out = StepResult(ok=False, unknown=True, reason="TIMEOUT", detail="no answer within the step timeout")
    run = v1(world(reserve_stock=lambda line: timed_out if line.sku == "slow" else OK), saga_input("a", "slow"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["void_payment", "release_stock a slow"]
    assert ("reserve slow", "UNKNOWN") in timeline(run)


def test_a_technical_failure_is_retried_then_an_unknown_outcome_and_is_undone():
    run = v1(world(authorize_payment=fails(ServiceUnavailable("payment-service unavailable"))), saga_input("a"))
    assert run.result == "FAILED"
    assert run.called("authorize_payment")[0].attempts == 4  # the step's retry policy, on the virtual clock
    assert undo_calls(run) == ["void_payment", "release_stock a"]
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["PAYMENT_UNAVAILABLE"]


def test_shipping_failure_undoes_everything_in_reverse():
    run = v1(world(create_shipment=DOWN), saga_input("a", "b"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a b"]
    assert "commit_stock" not in business_activities(run)


def test_an_undo_that_keeps_failing_ends_in_needs_attention_after_undoing_the_rest():
    run = v1(world(create_shipment=DOWN, cancel_shipment=DOWN), saga_input("a"))
    assert run.result == "NEEDS_ATTENTION"
    assert undo_calls(run) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a"]
    assert published(run)[-1] == "needs_attention"


@pytest.mark.parametrize(
    "events, expected, reason",
    [
        ({"approval": [{"order_id": "o-1", "decision": "approve", "approver": "ann"}]}, "COMPLETED", ""),
        ({"approval": [{"order_id": "o-1", "decision": "reject", "approver": "ann"}]}, "FAILED", "APPROVAL_REJECTED"),
        ({}, "FAILED", "APPROVAL_TIMEOUT"),
    ],
)
def test_the_approval_gate(events, expected, reason):
    run = v1(world(), saga_input("a", price=2_000_00), events=events)
    assert run.result == expected
    assert ("approval", "STARTED") in timeline(run)
    if reason:
        assert [r.reason for r in records(run) if r.status == "FAILED"] == [reason]


def test_an_approval_timeout_of_an_hour_takes_an_hour_of_virtual_time():
    run = v1(world(), saga_input("a", price=2_000_00))
    assert run.result == "FAILED"
    assert (run.now - run.harness.start_time).total_seconds() == 3600


def test_the_first_decision_wins():
    decisions = [{"order_id": "o-1", "decision": "reject"}, {"order_id": "o-1", "decision": "approve"}]
    run = v1(world(), saga_input("a", price=2_000_00), events={"approval": decisions})
    assert run.result == "FAILED"


def test_small_orders_skip_the_approval_gate():
    run = v1(world(), saga_input("a", price=999_99))
    assert ("approval", "STARTED") not in timeline(run)


def test_a_cancel_accepted_by_the_actor_stops_the_saga_before_shipping():
    run = v1(world(create_shipment=lambda shipment: CANCELLED_FIRST), saga_input("a"))
    assert run.result == "CANCELLED"
    assert ("ship", "CANCELLED") in timeline(run)
    # An earlier attempt may have passed the gate: the shipment is undone too (a no-op if not).
    assert undo_calls(run) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a"]
    assert "commit_stock" not in business_activities(run)


def test_a_cancel_accepted_before_the_capture_stops_the_charge():
    run = v1(world(capture_payment=lambda payment: CANCELLED_FIRST), saga_input("a"))
    assert run.result == "CANCELLED"
    assert "create_shipment" not in business_activities(run)
    assert published(run)[-1] == "cancelled"


def test_gated_steps_ask_the_actor_for_their_status_and_the_undo_carries_no_gate():
    run = v1(world(create_shipment=DOWN), saga_input("a"))
    capture = run.called("capture_payment")[0].input
    assert [r.status for r in capture.enter.records if r.status] == ["CHARGING"]
    refund = run.called("refund_payment")[0].input
    assert refund.enter is None


def test_a_cancel_event_interrupts_the_wait_for_approval():
    run = v1(world(), saga_input("a", price=2_000_00), events={"cancel": [{"reason": "changed my mind"}]})
    assert run.result == "CANCELLED"
    assert undo_calls(run) == ["void_payment", "release_stock a"]


def test_a_broker_that_stays_away_does_not_fail_the_order():
    def down(update):
        if update.event:
            raise EventNotPublished(f"{update.event.type}: nats: no servers available")
        return Gate()

    run = v1(world(update_order=down), saga_input("a"))
    assert run.result == "COMPLETED"
    assert ("event placed", "UNPUBLISHED") in timeline(run)
    assert ("event completed", "UNPUBLISHED") in timeline(run)


def test_an_actor_that_stays_away_failed_the_workflow_of_a_saga_started_before_the_faults_patch():
    """How sagas in flight before the patch replay (tests/unit/test_saga_faults.py: after)."""
    run = v1(world(update_order=fails(OrderNotUpdated("actor unreachable"))), saga_input("a"),
             without_patches={FAULTS_PATCH})
    assert run.status == "FAILED" and "actor unreachable" in run.failure


def test_a_stock_batch_that_failed_as_a_whole_is_undone_line_by_line():
    services = world()
    services["reserve_stock"] = fails(ServiceUnavailable("inventory-service unavailable"))
    run = v1(services, saga_input("a", "b"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["void_payment", "release_stock a b"]
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["INVENTORY_UNAVAILABLE"]


# ---- NEEDS_ATTENTION records what is left; a retry finishes it ------------------------------------

def test_needs_attention_records_the_undos_left_and_the_ending_the_saga_would_have_had():
    run = v1(world(create_shipment=DOWN, cancel_shipment=DOWN), saga_input("a"))
    assert run.result == "NEEDS_ATTENTION"
    unfinished = needs_attention_update(run).unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("undo ship", "cancel_shipment")]
    assert unfinished.calls[0].input["order_id"] == "o-1" and unfinished.calls[0].input["enter"] is None
    assert unfinished.ending == Ending(status="FAILED", reason="SHIPPING_FAILED")
    assert unfinished.resume_status == "COMPENSATING"


def test_a_commit_that_keeps_failing_leaves_the_commit_and_a_completed_ending():
    def down(line):
        raise ServiceUnavailable("inventory down")

    run = v1(world(commit_stock=down), saga_input("a", "b"))
    assert run.result == "NEEDS_ATTENTION"
    unfinished = needs_attention_update(run).unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("commit", "commit_stock")]
    assert [line["sku"] for line in unfinished.calls[0].input["lines"]] == ["a", "b"]
    assert unfinished.ending == Ending(status="COMPLETED", tracking_number="TRK-1")
    assert unfinished.resume_status == "SHIPPING"


# What the order's calls take, as a saga plans them for a retry.
INPUTS = {
    "cancel_shipment": ShipmentCall(order_id="o-1", customer_id="c-1"),
    "release_stock": StockBatch(order_id="o-1", lines=[StockLine(order_id="o-1", sku="a", quantity=1)]),
    "commit_stock": StockBatch(order_id="o-1", lines=[StockLine(order_id="o-1", sku="a", quantity=1)]),
}


def retry_input(*calls: tuple[str, str], ending: Ending, resume="COMPENSATING", attempt=2) -> RetryInput:
    unfinished = Unfinished(calls=[PlannedCall(step=s, activity=a, input=INPUTS[a].model_dump(mode="json"))
                                   for s, a in calls], ending=ending, resume_status=resume)
    return RetryInput(order=saga_input("a").order, unfinished=unfinished, attempt=attempt, retried_by="ann")


def test_a_retry_runs_what_was_left_in_order_and_ends_as_the_saga_would_have():
    plan = retry_input(("undo ship", "cancel_shipment"), ("undo reserve", "release_stock"),
                       ending=Ending(status="FAILED", reason="SHIPPING_FAILED"))
    run = run_saga(world(release_stock=lambda line: OK), plan, workflow=RETRY)
    assert run.result == "FAILED"
    assert business_activities(run) == ["cancel_shipment", "release_stock"]
    assert timeline(run) == [("retry", "STARTED"), ("undo ship", "DONE"), ("undo reserve a", "DONE"),
                             ("finish", "FAILED")]
    first, last = records(run)[0], records(run)[-1]
    assert (first.status, first.detail) == ("COMPENSATING", "attempt 2, by ann")
    assert (last.status, last.reason) == ("FAILED", "SHIPPING_FAILED")
    assert all(r.key.startswith("retry 2: ") for r in records(run)), "a retry's entries must not collide"
    assert published(run) == ["failed"]


def test_a_retried_commit_completes_the_order_with_its_tracking_number():
    plan = retry_input(("commit", "commit_stock"), ending=Ending(status="COMPLETED", tracking_number="TRK-9"),
                       resume="SHIPPING")
    run = run_saga(world(), plan, workflow=RETRY)
    assert run.result == "COMPLETED"
    assert records(run)[-1].tracking_number == "TRK-9"
    assert published(run) == ["completed"]


def test_a_retry_that_still_fails_needs_attention_again_with_only_what_is_still_left():
    plan = retry_input(("undo ship", "cancel_shipment"), ("undo reserve", "release_stock"),
                       ending=Ending(status="FAILED", reason="SHIPPING_FAILED"))
    run = run_saga(world(cancel_shipment=DOWN), plan, workflow=RETRY)
    assert run.result == "NEEDS_ATTENTION"
    left = needs_attention_update(run).unfinished
    assert [c.step for c in left.calls] == ["undo ship"]
    assert left.ending == plan.unfinished.ending
    assert published(run) == ["needs_attention"]


def test_the_ending_of_a_cancelled_order_is_published():
    """Found by tests/fuzz/test_histories.py: once a cancel was accepted, update_order published
    no event at all, so no CANCELLED order ever announced `cancelled` on order-events."""
    from order_service.activities import refused
    from order_service.messages import LifecycleEvent, OrderUpdate, StepRecord

    def update(status: str, event_type: str) -> OrderUpdate:
        return OrderUpdate(order_id="o", records=[StepRecord(order_id="o", step="s", outcome="x", status=status)],
                           event=LifecycleEvent(order_id="o", type=event_type, status=status))

    cancelled = Gate(cancel_requested=True)
    assert not refused(update("CANCELLED", "cancelled"), cancelled)
    assert not refused(update("FAILED", "failed"), cancelled)
    assert refused(update("RESERVING", "placed"), cancelled)  # the actor refused the move
    assert refused(update("AWAITING_APPROVAL", "approval_requested"), cancelled)
    assert not refused(update("RESERVING", "placed"), Gate())
