"""Faults the saga cannot judge, on the fake durable runtime: the order's record that cannot be
written (issue 18, hole 2), a bug in a step (hole 9), a cancel whose event never reached the saga
(hole 4). The saga never fails its workflow with stock reserved and credit held, never blames a
fault on the customer's order with a business reason, and never undoes what cannot be undone.
"""

from __future__ import annotations

import pytest

from order_service.activities import OrderNotUpdated, ServiceUnavailable
from order_service.messages import Gate, OrderUpdate
from order_service.retry_saga import retry_saga
from order_service.saga import CANCEL_BEATS_TIMEOUT_PATCH, FAULTS_PATCH, order_saga
from order_service.saga_v2 import order_saga_v2
from tests.helpers.fake_workflow import FakeContext, run_saga
from tests.unit.test_saga import saga_input
from tests.unit.test_saga import world as v1_world
from tests.unit.test_saga_v2 import undo_calls, world

LARGE = 150_000  # cents per line: above the approval threshold of saga_input


def actor_down_for(n_updates: int, *, unless=lambda update: False):
    """update_order fails (after the runtime's retries) for its first `n_updates` calls."""
    calls = {"n": 0}

    def update_order(update: OrderUpdate):
        calls["n"] += 1
        if calls["n"] <= n_updates and not unless(update):
            raise OrderNotUpdated("UNAVAILABLE: actor host not found")
        return Gate()
    return update_order


def ending_of(ctx: FakeContext) -> OrderUpdate:
    """The last update that took (the order's record), or the one the saga left in its custom
    status when none took."""
    updates = [c.input for c in ctx.calls if c.name == "update_order" and c.task.is_complete and not c.task.is_failed]
    return updates[-1] if updates else OrderUpdate.model_validate_json(ctx.custom_status)


# ---- hole 2: the order's record that cannot be written --------------------------------------

def test_an_approval_gate_the_actor_never_opened_undoes_everything_and_needs_attention():
    ctx = FakeContext(world(update_order=actor_down_for(1)))
    assert run_saga(order_saga_v2, saga_input("a", price=LARGE), ctx) == "NEEDS_ATTENTION"
    assert undo_calls(ctx) == ["void_payment", "release_lines"]
    assert "capture_payment" not in [c.name for c in ctx.calls]
    ending = ending_of(ctx)
    assert ending.records[-1].status == "NEEDS_ATTENTION"
    assert ending.unfinished.calls == []  # everything was undone
    assert (ending.unfinished.ending.status, ending.unfinished.ending.reason) == ("FAILED", "INTERNAL_ERROR")
    assert "the order's record could not be written" in ending.records[-1].detail


def test_an_actor_that_stays_away_leaves_the_ending_to_the_orders_checkup():
    """Every update fails: the saga still undoes what it did, ends its workflow cleanly, and
    leaves what the order never heard as its custom status (the order's check-up records it)."""
    ctx = FakeContext(world(update_order=actor_down_for(10_000)))
    assert run_saga(order_saga_v2, saga_input("a", price=LARGE), ctx) == "NEEDS_ATTENTION"
    assert undo_calls(ctx) == ["void_payment", "release_lines"]
    left = OrderUpdate.model_validate_json(ctx.custom_status)
    assert [r.status for r in left.records if r.status] == ["AWAITING_APPROVAL", "COMPENSATING", "NEEDS_ATTENTION"]
    assert left.unfinished.ending.reason == "INTERNAL_ERROR"
    assert left.event.type == "needs_attention"


def test_a_gate_the_actor_never_opened_in_saga_v1():
    ctx = FakeContext(v1_world(update_order=actor_down_for(1)))
    assert run_saga(order_saga, saga_input("a", price=LARGE), ctx) == "NEEDS_ATTENTION"
    assert [c.name for c in ctx.calls if c.name in ("release_stock", "void_payment")] == ["void_payment",
                                                                                          "release_stock"]


def test_an_ending_the_actor_refused_does_not_undo_a_shipment():
    """Past the shipment nothing is undone: a completion that could not be recorded (after the
    commit) leaves the commit to do and the order COMPLETED once it is."""
    def finish_order(finish):
        raise OrderNotUpdated("UNAVAILABLE: actor host not found")

    ctx = FakeContext(world(finish_order=finish_order))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "NEEDS_ATTENTION"
    assert undo_calls(ctx) == []
    unfinished = ending_of(ctx).unfinished
    assert [c.activity for c in unfinished.calls] == ["commit_lines"]
    assert unfinished.ending.status == "COMPLETED"


def test_a_note_the_actor_refused_does_not_stop_the_saga():
    """Only an update that moves the order into a status is a gate: a timeline note that did
    not take (here, after the broker refused `completed`) is left for the check-up."""
    from order_service.activities import EventNotPublished

    def finish_order(finish):
        raise EventNotPublished("completed: nats: no servers available")

    ctx = FakeContext(world(finish_order=finish_order, update_order=actor_down_for(1)))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "COMPLETED"
    assert undo_calls(ctx) == []
    assert ("event completed", "UNPUBLISHED") in [(r.step, r.outcome) for r in
                                                  OrderUpdate.model_validate_json(ctx.custom_status).records]


def test_a_retry_stopped_by_the_actor_leaves_all_of_its_calls():
    from order_service.domain import Ending, OrderRequest, PlannedCall, Unfinished
    from order_service.messages import RetryInput

    unfinished = Unfinished(calls=[PlannedCall(step="undo ship", activity="cancel_shipment", input={})],
                            ending=Ending(status="FAILED", reason="SHIPPING_FAILED"), resume_status="COMPENSATING")
    order = OrderRequest(order_id="o-1", customer_id="c-1", items=[{"sku": "a", "quantity": 1, "unit_price_cents": 1}])
    ctx = FakeContext(world(update_order=actor_down_for(1)))
    assert run_saga(retry_saga, RetryInput(order=order, unfinished=unfinished, attempt=1), ctx) == "NEEDS_ATTENTION"
    assert "cancel_shipment" not in [c.name for c in ctx.calls]
    assert ending_of(ctx).unfinished == unfinished


def test_a_saga_in_flight_before_the_patch_fails_as_it_did():
    ctx = FakeContext(world(update_order=actor_down_for(1)), unpatched={FAULTS_PATCH})
    with pytest.raises(Exception, match="actor host not found"):
        run_saga(order_saga_v2, saga_input("a", price=LARGE), ctx)


# ---- hole 9: a bug in a step ------------------------------------------------------------------

@pytest.mark.parametrize("step, reason_before", [
    ("reserve_lines", "INVENTORY_UNAVAILABLE"), ("authorize_payment", "PAYMENT_UNAVAILABLE"),
    ("capture_payment", "PAYMENT_UNAVAILABLE"), ("create_shipment", "SHIPPING_FAILED"),
])
def test_a_bug_in_a_step_is_undone_and_left_to_a_person_not_blamed_on_the_order(step, reason_before):
    def bug(_):
        raise TypeError("'NoneType' object is not subscriptable")

    ctx = FakeContext(world(**{step: bug}))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "NEEDS_ATTENTION"
    ending = ending_of(ctx)
    assert (ending.unfinished.ending.status, ending.unfinished.ending.reason) == ("FAILED", "INTERNAL_ERROR")
    assert "TypeError" in ending.records[-1].detail and step in ending.records[-1].detail
    assert "release_lines" in undo_calls(ctx)  # a step that raised may have happened: undone
    before = FakeContext(world(**{step: bug}), unpatched={FAULTS_PATCH})
    assert run_saga(order_saga_v2, saga_input("a"), before) == "FAILED"
    assert [r.reason for r in before.records() if r.status == "FAILED"] == [reason_before]


def test_a_service_that_is_away_still_fails_the_order_with_its_reason():
    def away(_):
        raise ServiceUnavailable("capture: UNAVAILABLE: connection refused")

    ctx = FakeContext(world(capture_payment=away))
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "FAILED"
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["PAYMENT_UNAVAILABLE"]
    assert undo_calls(ctx) == ["refund_payment", "void_payment", "release_lines"]


# ---- hole 4: a cancel that never reached the saga ---------------------------------------------

def test_a_cancel_accepted_before_the_approval_timed_out_ends_the_order_cancelled():
    def update_order(update: OrderUpdate):
        # The actor accepted a cancel while the saga waited; its event never came.
        return Gate(cancel_requested=any(r.status == "COMPENSATING" for r in update.records))

    ctx = FakeContext(world(update_order=update_order))
    assert run_saga(order_saga_v2, saga_input("a", price=LARGE), ctx) == "CANCELLED"
    assert ("finish", "CANCELLED") in ctx.timeline()
    before = FakeContext(world(update_order=update_order), unpatched={CANCEL_BEATS_TIMEOUT_PATCH})
    assert run_saga(order_saga_v2, saga_input("a", price=LARGE), before) == "FAILED"


def test_a_timed_out_approval_without_a_cancel_still_fails_with_approval_timeout():
    ctx = FakeContext(world())
    assert run_saga(order_saga_v2, saga_input("a", price=LARGE), ctx) == "FAILED"
    assert [r.reason for r in ctx.records() if r.status == "FAILED"] == ["APPROVAL_TIMEOUT"]


def test_results_are_unchanged_for_the_happy_path():
    ctx = FakeContext(world())
    assert run_saga(order_saga_v2, saga_input("a"), ctx) == "COMPLETED"
    assert ctx.custom_status == ""
    assert FAULTS_PATCH not in ctx.patches  # a saga without faults records no patch
