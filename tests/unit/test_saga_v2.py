"""Saga v2 (order_service/saga_v2.py) on the fake durable runtime: the same business decisions as
v1 in 5 activities, the reservation gated by the actor, the completion riding with the commit."""

from __future__ import annotations

from order_service.activities import CANCELLED_FIRST, EventNotPublished, ServiceUnavailable
from order_service.domain import Ending
from order_service.messages import Gate, StepResult
from order_service.saga_v2 import order_saga_v2
from tests.helpers.fake_workflow import FakeContext, run_saga
from tests.unit.test_saga import saga_input

OK = StepResult(ok=True)


def lines_answer(ok=True, reason="", short=()):
    """An inventory answer for all of an order's lines at once (all reserved, or none)."""
    def activity(batch):
        return StepResult(ok=ok, reason=reason, parts=[
            StepResult(name=line.sku, ok=ok, reason="" if ok else ("OUT_OF_STOCK" if line.sku in short
                                                                   else "NOT_RESERVED"))
            for line in batch.lines])
    return activity


def world(**overrides):
    base = {
        "update_order": lambda update: Gate(),
        "reserve_lines": lines_answer(),
        "release_lines": lines_answer(),
        "commit_lines": lines_answer(),
        "finish_order": lambda finish: OK,
        "authorize_payment": lambda payment: OK,
        "capture_payment": lambda payment: OK,
        "void_payment": lambda payment: OK,
        "refund_payment": lambda payment: OK,
        "create_shipment": lambda shipment: StepResult(ok=True, detail="TRK-1"),
        "cancel_shipment": lambda shipment: OK,
    }
    base.update(overrides)
    return base


def undo_calls(ctx: FakeContext) -> list[str]:
    return [c.name for c in ctx.calls if c.name in ("release_lines", "void_payment", "refund_payment",
                                                     "cancel_shipment")]


def fails(_):
    raise ServiceUnavailable("down")


def test_happy_path_in_five_activities_and_four_actor_updates():
    ctx = FakeContext(world())
    assert run_saga(order_saga_v2, saga_input("a", "b", "c"), ctx) == "COMPLETED"
    assert [c.name for c in ctx.calls] == [
        "reserve_lines", "authorize_payment", "capture_payment", "create_shipment", "finish_order"]
    assert [[r.status for r in u.records if r.status] for u in ctx.updates()] == [
        ["RESERVING"], ["CHARGING"], ["SHIPPING"], ["COMPLETED"]]
    assert ctx.timeline() == [
        ("reserve", "STARTED"), ("reserve a", "DONE"), ("reserve b", "DONE"), ("reserve c", "DONE"),
        ("authorize", "DONE"), ("capture", "STARTED"), ("capture", "DONE"), ("ship", "STARTED"), ("ship", "DONE"),
        ("commit", "DONE"), ("complete", "COMPLETED"),
    ]
    # The actor announces the order; the saga announces its end, with the completion.
    assert ctx.published() == ["completed"]
    (finish,) = [c.input for c in ctx.calls if c.name == "finish_order"]
    assert [line.sku for line in finish.commit.lines] == ["a", "b", "c"] and finish.commit.enter is None
    assert finish.complete.records[-1].tracking_number == "TRK-1"


def test_out_of_stock_reserves_nothing_so_only_the_hold_is_undone():
    ctx = FakeContext(world(reserve_lines=lines_answer(ok=False, reason="OUT_OF_STOCK", short=("b",))))
    assert run_saga(order_saga_v2, saga_input("a", "b"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["void_payment"]
    assert ("reserve b", "OUT_OF_STOCK") in ctx.timeline() and ("reserve a", "NOT_RESERVED") in ctx.timeline()
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["OUT_OF_STOCK"]


def test_payment_declined_releases_the_lines():
    ctx = FakeContext(world(authorize_payment=lambda p: StepResult(ok=False, reason="PAYMENT_DECLINED")))
    assert run_saga(order_saga_v2, saga_input("a", "b"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["release_lines"]
    assert ("undo reserve a", "DONE") in ctx.timeline() and ("undo reserve b", "DONE") in ctx.timeline()


def test_a_reservation_that_failed_technically_is_released_because_it_may_have_landed():
    ctx = FakeContext(world(reserve_lines=fails))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["void_payment", "release_lines"]
    (release,) = [c.input for c in ctx.calls if c.name == "release_lines"]
    assert release.enter is None
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["INVENTORY_UNAVAILABLE"]


def test_shipping_failure_undoes_everything_in_reverse():
    ctx = FakeContext(world(create_shipment=fails))
    assert run_saga(order_saga_v2, saga_input("a", "b"), ctx) == "FAILED"
    assert undo_calls(ctx) == ["cancel_shipment", "refund_payment", "void_payment", "release_lines"]
    assert "finish_order" not in [c.name for c in ctx.calls]


def test_a_cancel_accepted_before_the_reservation_unwinds_the_hold():
    ctx = FakeContext(world(reserve_lines=lambda batch: CANCELLED_FIRST))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "CANCELLED"
    # The gate refused: nothing was reserved, but an earlier attempt may have been, so it is released.
    assert undo_calls(ctx) == ["void_payment", "release_lines"]


def test_a_commit_that_keeps_failing_needs_attention_with_the_commit_left_to_do():
    ctx = FakeContext(world(finish_order=fails))
    assert run_saga(order_saga_v2, saga_input("a", "b"), ctx) == "NEEDS_ATTENTION"
    (update,) = [u for u in ctx.updates() if u.unfinished]
    unfinished = update.unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("commit", "commit_lines")]
    assert [line["sku"] for line in unfinished.calls[0].input["lines"]] == ["a", "b"]
    assert unfinished.ending == Ending(status="COMPLETED", tracking_number="TRK-1")
    assert unfinished.resume_status == "SHIPPING"
    assert ("complete", "COMPLETED") not in ctx.timeline()  # never recorded: the commit did not happen
    assert ("commit", "UNKNOWN") in ctx.timeline()


def test_a_completed_event_the_broker_refused_is_noted_and_the_order_completes():
    def unpublished(finish):
        raise EventNotPublished("completed: nats: no servers available")

    ctx = FakeContext(world(finish_order=unpublished))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "COMPLETED"
    assert ("event completed", "UNPUBLISHED") in ctx.timeline()
