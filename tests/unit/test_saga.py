"""The saga's decisions and compensation order, run on a fake durable runtime (no sidecar)."""

from __future__ import annotations

import pytest

from order_service.activities import CANCELLED_FIRST, EventNotPublished, OrderNotUpdated, ServiceUnavailable
from order_service.decisions import batch_result
from order_service.domain import Ending, OrderRequest, PlannedCall, Unfinished
from order_service.messages import Gate, RetryInput, SagaInput, StepResult
from order_service.retry_saga import retry_saga
from order_service.saga import FAULTS_PATCH, order_saga
from tests.helpers.fake_workflow import HANG, FakeContext, run_saga

OK = StepResult(ok=True)


def saga_input(*lines, price=100, threshold=1_000_00) -> SagaInput:
    order = OrderRequest(order_id="o-1", customer_id="c-1",
                         items=[{"sku": sku, "quantity": 1, "unit_price_cents": price} for sku in lines])
    return SagaInput(order=order, approval_threshold_cents=threshold, approval_timeout_s=3600, step_timeout_s=30)


def per_line(answer):
    """A stock activity (one call per line of the batch) from an answer per line."""
    def activity(batch):
        parts = [answer(line) for line in batch.lines]
        if any(part is HANG for part in parts):
            return HANG
        return batch_result([part.model_copy(update={"name": line.sku}) for line, part in zip(batch.lines, parts)])
    return activity


def world(**overrides):
    """Every activity succeeds unless overridden; shipments get a tracking number."""
    stock = {name: per_line(overrides.pop(name)) for name in ("reserve_stock", "release_stock", "commit_stock")
             if name in overrides}
    base = {
        "update_order": lambda update: Gate(),
        "reserve_stock": per_line(lambda line: OK),
        "release_stock": per_line(lambda line: OK),
        "commit_stock": per_line(lambda line: OK),
        "authorize_payment": lambda payment: OK,
        "capture_payment": lambda payment: OK,
        "void_payment": lambda payment: OK,
        "refund_payment": lambda payment: OK,
        "create_shipment": lambda shipment: StepResult(ok=True, detail="TRK-1"),
        "cancel_shipment": lambda shipment: OK,
    }
    base.update(overrides, **stock)
    return base


def undo_calls(ctx: FakeContext) -> list[str]:
    return [" ".join([c.name] + [line.sku for line in getattr(c.input, "lines", [])]) for c in ctx.calls
            if c.name in ("release_stock", "void_payment", "refund_payment", "cancel_shipment")]


def test_happy_path_runs_the_steps_in_business_order():
    ctx = FakeContext(world())
    assert run_saga(order_saga, saga_input("a", "b"), ctx) == "COMPLETED"
    assert ctx.activity_names() == [
        "reserve_stock", "authorize_payment", "capture_payment", "create_shipment", "commit_stock"]
    assert ctx.timeline() == [
        ("reserve", "STARTED"), ("reserve a", "DONE"), ("reserve b", "DONE"), ("authorize", "DONE"),
        ("capture", "STARTED"), ("capture", "DONE"), ("ship", "STARTED"), ("ship", "DONE"),
        ("commit a", "DONE"), ("commit b", "DONE"), ("complete", "COMPLETED"),
    ]
    assert ctx.published() == ["placed", "completed"]
    assert undo_calls(ctx) == []


def test_the_timeline_is_written_in_one_update_per_status_change():
    ctx = FakeContext(world())
    run_saga(order_saga, saga_input("a", "b", "c"), ctx)
    # One activity per service call (the lines of a batch go together); the capture and the
    # shipment carry their own status change; the announcement and the ending are updates:
    # 7 workflow activities whatever the width, 4 actor updates instead of one per entry.
    assert len(ctx.calls) == 7
    assert [[r.status for r in u.records if r.status] for u in ctx.updates()] == [
        ["RESERVING"], ["CHARGING"], ["SHIPPING"], ["COMPLETED"]]


def test_reservations_the_hold_and_the_announcement_start_together():
    ctx = FakeContext(world(reserve_stock=lambda line: HANG, authorize_payment=lambda p: HANG))
    with pytest.raises(AssertionError, match="can never happen"):
        run_saga(order_saga, saga_input("a", "b"), ctx)
    assert [c.name for c in ctx.calls] == ["reserve_stock", "authorize_payment", "update_order"]
    assert ctx.published() == ["placed"]


def test_out_of_stock_releases_what_was_reserved_and_voids_the_hold_in_reverse():
    short = StepResult(ok=False, reason="OUT_OF_STOCK")
    ctx = FakeContext(world(reserve_stock=lambda line: short if line.sku == "b" else OK))
    assert run_saga(order_saga, saga_input("a", "b", "c"), ctx) == "FAILED"
    # b said a definite no: nothing to undo there. The hold was started last: undone first.
    assert undo_calls(ctx) == ["void_payment", "release_stock a c"]
    assert ("finish", "FAILED") in ctx.timeline()
    assert "capture_payment" not in ctx.activity_names()


def test_payment_declined_is_not_voided_but_stock_is_released():
    ctx = FakeContext(world(authorize_payment=lambda p: StepResult(ok=False, reason="PAYMENT_DECLINED")))
    assert run_saga(order_saga, saga_input("a"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["release_stock a"]
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["PAYMENT_DECLINED"]


def test_a_step_that_timed_out_is_still_undone_because_it_may_land_later():
    timed_out = StepResult(ok=False, unknown=True, reason="TIMEOUT", detail="no answer within the step timeout")
    ctx = FakeContext(world(reserve_stock=lambda line: timed_out if line.sku == "slow" else OK))
    assert run_saga(order_saga, saga_input("a", "slow"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["void_payment", "release_stock a slow"]
    assert ("reserve slow", "UNKNOWN") in ctx.timeline()


def test_a_technical_failure_is_an_unknown_outcome_and_is_undone():
    def broken(payment):
        raise ServiceUnavailable("payment-service unavailable")

    ctx = FakeContext(world(authorize_payment=broken))
    assert run_saga(order_saga, saga_input("a"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["void_payment", "release_stock a"]
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["PAYMENT_UNAVAILABLE"]


def test_shipping_failure_undoes_everything_in_reverse():
    ctx = FakeContext(world(create_shipment=lambda s: (_ for _ in ()).throw(ServiceUnavailable("down"))))
    assert run_saga(order_saga, saga_input("a", "b"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a b"]
    assert "commit_stock" not in ctx.activity_names()


def test_an_undo_that_keeps_failing_ends_in_needs_attention_after_undoing_the_rest():
    def fails(_):
        raise ServiceUnavailable("still down")

    ctx = FakeContext(world(create_shipment=fails, cancel_shipment=fails))
    assert run_saga(order_saga, saga_input("a"), ctx) == "NEEDS_ATTENTION"
    assert undo_calls(ctx) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a"]
    assert ctx.published()[-1] == "needs_attention"


@pytest.mark.parametrize(
    "events, expected, reason",
    [
        ({"approval": [{"order_id": "o-1", "decision": "approve", "approver": "ann"}]}, "COMPLETED", ""),
        ({"approval": [{"order_id": "o-1", "decision": "reject", "approver": "ann"}]}, "FAILED", "APPROVAL_REJECTED"),
        ({}, "FAILED", "APPROVAL_TIMEOUT"),
    ],
)
def test_the_approval_gate(events, expected, reason):
    ctx = FakeContext(world(), events=events)
    assert run_saga(order_saga, saga_input("a", price=2_000_00), ctx) == expected
    assert ("approval", "STARTED") in ctx.timeline()
    if reason:
        assert [r.reason for r in ctx.records() if r.status == "FAILED"] == [reason]


def test_the_first_decision_wins():
    decisions = [{"order_id": "o-1", "decision": "reject"}, {"order_id": "o-1", "decision": "approve"}]
    ctx = FakeContext(world(), events={"approval": decisions})
    assert run_saga(order_saga, saga_input("a", price=2_000_00), ctx) == "FAILED"


def test_small_orders_skip_the_approval_gate():
    ctx = FakeContext(world())
    run_saga(order_saga, saga_input("a", price=999_99), ctx)
    assert ("approval", "STARTED") not in ctx.timeline()


def test_a_cancel_accepted_by_the_actor_stops_the_saga_before_shipping():
    ctx = FakeContext(world(create_shipment=lambda shipment: CANCELLED_FIRST))
    assert run_saga(order_saga, saga_input("a"), ctx) == "CANCELLED"
    assert ("ship", "CANCELLED") in ctx.timeline()
    # An earlier attempt may have passed the gate: the shipment is undone too (a no-op if not).
    assert undo_calls(ctx) == ["cancel_shipment", "refund_payment", "void_payment", "release_stock a"]
    assert "commit_stock" not in ctx.activity_names()


def test_a_cancel_accepted_before_the_capture_stops_the_charge():
    ctx = FakeContext(world(capture_payment=lambda payment: CANCELLED_FIRST))
    assert run_saga(order_saga, saga_input("a"), ctx) == "CANCELLED"
    assert "create_shipment" not in ctx.activity_names()
    assert ctx.published()[-1] == "cancelled"


def test_gated_steps_ask_the_actor_for_their_status_and_the_undo_carries_no_gate():
    ctx = FakeContext(world(create_shipment=lambda s: (_ for _ in ()).throw(ServiceUnavailable("down"))))
    run_saga(order_saga, saga_input("a"), ctx)
    capture = next(c.input for c in ctx.calls if c.name == "capture_payment")
    assert [r.status for r in capture.enter.records if r.status] == ["CHARGING"]
    refund = next(c.input for c in ctx.calls if c.name == "refund_payment")
    assert refund.enter is None


def test_a_cancel_event_interrupts_the_wait_for_approval():
    ctx = FakeContext(world(), events={"cancel": [{"reason": "changed my mind"}]})
    assert run_saga(order_saga, saga_input("a", price=2_000_00), ctx) == "CANCELLED"
    assert undo_calls(ctx) == ["void_payment", "release_stock a"]


def test_a_broker_that_stays_away_does_not_fail_the_order():
    def down(update):
        if update.event:
            raise EventNotPublished(f"{update.event.type}: nats: no servers available")
        return Gate()

    ctx = FakeContext(world(update_order=down))
    assert run_saga(order_saga, saga_input("a"), ctx) == "COMPLETED"
    assert ("event placed", "UNPUBLISHED") in ctx.timeline()
    assert ("event completed", "UNPUBLISHED") in ctx.timeline()


def test_an_actor_that_stays_away_failed_the_workflow_of_a_saga_started_before_the_faults_patch():
    """How sagas in flight before the patch replay (tests/unit/test_saga_faults.py: after)."""
    def down(update):
        raise OrderNotUpdated("actor unreachable")

    ctx = FakeContext(world(update_order=down), unpatched={FAULTS_PATCH})
    with pytest.raises(Exception, match="actor unreachable"):
        run_saga(order_saga, saga_input("a"), ctx)


def test_a_stock_batch_that_failed_as_a_whole_is_undone_line_by_line():
    def broken(batch):
        raise ServiceUnavailable("inventory-service unavailable")

    ctx = FakeContext(world())
    ctx.world["reserve_stock"] = broken
    assert run_saga(order_saga, saga_input("a", "b"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["void_payment", "release_stock a b"]
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["INVENTORY_UNAVAILABLE"]


# ---- NEEDS_ATTENTION records what is left; a retry finishes it ------------------------------------

def needs_attention_update(ctx: FakeContext):
    (update,) = [u for u in ctx.updates() if u.unfinished]
    return update


def test_needs_attention_records_the_undos_left_and_the_ending_the_saga_would_have_had():
    def fails(_):
        raise ServiceUnavailable("still down")

    ctx = FakeContext(world(create_shipment=fails, cancel_shipment=fails))
    assert run_saga(order_saga, saga_input("a"), ctx) == "NEEDS_ATTENTION"
    unfinished = needs_attention_update(ctx).unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("undo ship", "cancel_shipment")]
    assert unfinished.calls[0].input["order_id"] == "o-1" and unfinished.calls[0].input["enter"] is None
    assert unfinished.ending == Ending(status="FAILED", reason="SHIPPING_FAILED")
    assert unfinished.resume_status == "COMPENSATING"


def test_a_commit_that_keeps_failing_leaves_the_commit_and_a_completed_ending():
    def fails(line):
        raise ServiceUnavailable("inventory down")

    ctx = FakeContext(world(commit_stock=fails))
    assert run_saga(order_saga, saga_input("a", "b"), ctx) == "NEEDS_ATTENTION"
    unfinished = needs_attention_update(ctx).unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("commit", "commit_stock")]
    assert [line["sku"] for line in unfinished.calls[0].input["lines"]] == ["a", "b"]
    assert unfinished.ending == Ending(status="COMPLETED", tracking_number="TRK-1")
    assert unfinished.resume_status == "SHIPPING"


def retry_input(*calls: tuple[str, str], ending: Ending, resume="COMPENSATING", attempt=2) -> RetryInput:
    unfinished = Unfinished(calls=[PlannedCall(step=s, activity=a, input={"order_id": "o-1"}) for s, a in calls],
                            ending=ending, resume_status=resume)
    return RetryInput(order=saga_input("a").order, unfinished=unfinished, attempt=attempt, retried_by="ann")


def test_a_retry_runs_what_was_left_in_order_and_ends_as_the_saga_would_have():
    ctx = FakeContext({"update_order": lambda u: Gate(), "cancel_shipment": lambda s: OK,
                       "release_stock": lambda b: OK})
    plan = retry_input(("undo ship", "cancel_shipment"), ("undo reserve", "release_stock"),
                       ending=Ending(status="FAILED", reason="SHIPPING_FAILED"))
    assert run_saga(retry_saga, plan, ctx) == "FAILED"
    assert ctx.activity_names() == ["cancel_shipment", "release_stock"]
    assert ctx.timeline() == [("retry", "STARTED"), ("undo ship", "DONE"), ("undo reserve", "DONE"),
                              ("finish", "FAILED")]
    first, last = ctx.records()[0], ctx.records()[-1]
    assert (first.status, first.detail) == ("COMPENSATING", "attempt 2, by ann")
    assert (last.status, last.reason) == ("FAILED", "SHIPPING_FAILED")
    assert all(r.key.startswith("retry 2: ") for r in ctx.records()), "a retry's entries must not collide"
    assert ctx.published() == ["failed"]


def test_a_retried_commit_completes_the_order_with_its_tracking_number():
    ctx = FakeContext({"update_order": lambda u: Gate(), "commit_stock": lambda b: OK})
    plan = retry_input(("commit", "commit_stock"), ending=Ending(status="COMPLETED", tracking_number="TRK-9"),
                       resume="SHIPPING")
    assert run_saga(retry_saga, plan, ctx) == "COMPLETED"
    assert ctx.records()[-1].tracking_number == "TRK-9"
    assert ctx.published() == ["completed"]


def test_a_retry_that_still_fails_needs_attention_again_with_only_what_is_still_left():
    def fails(_):
        raise ServiceUnavailable("still down")

    ctx = FakeContext({"update_order": lambda u: Gate(), "cancel_shipment": fails, "release_stock": lambda b: OK})
    plan = retry_input(("undo ship", "cancel_shipment"), ("undo reserve", "release_stock"),
                       ending=Ending(status="FAILED", reason="SHIPPING_FAILED"))
    assert run_saga(retry_saga, plan, ctx) == "NEEDS_ATTENTION"
    left = needs_attention_update(ctx).unfinished
    assert [c.step for c in left.calls] == ["undo ship"]
    assert left.ending == plan.unfinished.ending
    assert ctx.published() == ["needs_attention"]


def test_the_ending_of_a_cancelled_order_is_published():
    """Found by tests/fuzz/test_histories.py: once a cancel was accepted, update_order published
    no event at all, so no CANCELLED order ever announced `cancelled` on order-events."""
    from order_service.activities import refused
    from order_service.messages import Gate, LifecycleEvent, OrderUpdate, StepRecord

    def update(status: str, event_type: str) -> OrderUpdate:
        return OrderUpdate(order_id="o", records=[StepRecord(order_id="o", step="s", outcome="x", status=status)],
                           event=LifecycleEvent(order_id="o", type=event_type, status=status))

    cancelled = Gate(cancel_requested=True)
    assert not refused(update("CANCELLED", "cancelled"), cancelled)
    assert not refused(update("FAILED", "failed"), cancelled)
    assert refused(update("RESERVING", "placed"), cancelled)  # the actor refused the move
    assert refused(update("AWAITING_APPROVAL", "approval_requested"), cancelled)
    assert not refused(update("RESERVING", "placed"), Gate())
