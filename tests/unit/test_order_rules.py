"""OrderActor's rules, as pure functions (order_service/order_rules.py): no actor, no sidecar."""

from __future__ import annotations

import pytest

from order_service import order_rules as rules
from order_service.domain import Ending, OrderRequest, OrderStatus, PlannedCall, Unfinished
from order_service.messages import LifecycleEvent, OrderUpdate, StepRecord

AT = "2026-01-01T00:00:00.000+00:00"
SMALL = OrderRequest(order_id="o-1", customer_id="c", items=[{"sku": "a", "quantity": 1, "unit_price_cents": 500}])
LARGE = OrderRequest(order_id="o-1", customer_id="c", items=[{"sku": "a", "quantity": 1, "unit_price_cents": 150_000}])
THRESHOLD = 100_000


def order(status=OrderStatus.PLACED, request=SMALL, **fields):
    placed = rules.new_order(request, at=AT, trace_parent="", threshold_cents=THRESHOLD)
    return placed.model_copy(update={"status": OrderStatus(status), **fields})


def record(step, outcome, status="", key=None, **fields):
    return {"step": step, "outcome": outcome, "status": status, "key": key or f"{step}:{outcome}", **fields}


def test_a_placed_order_is_in_flight_and_owes_its_row_and_its_announcement():
    placed = order()
    assert (placed.status, placed.indexed_as, placed.saga_instance_id) == ("PLACED", "", "order-saga-o-1")
    assert placed.owes_anything and placed.index_row_json().startswith('{"$":500,"c":"c"')
    assert [e.type for e in placed.owed_events] == ["placed"] and placed.approval_threshold_cents == THRESHOLD
    assert rules.is_new(None, SMALL) and not rules.is_new(placed, SMALL)
    with pytest.raises(rules.Refused, match="ALREADY_EXISTS"):
        rules.is_new(placed, LARGE)


@pytest.mark.parametrize("status", ["PLACED", "RESERVING", "AWAITING_APPROVAL", "CHARGING"])
def test_a_cancel_is_accepted_until_shipping_once(status):
    placed = order(status)
    assert rules.cancel(placed, "changed my mind", AT) and placed.cancel_requested and placed.owes_cancel
    assert not rules.cancel(placed, "again", AT)  # a repeat
    assert rules.cancel_reason(placed) == "changed my mind"


@pytest.mark.parametrize("status, why", [
    ("SHIPPING", "the shipment is being created"), ("COMPLETED", "it is COMPLETED"),
    ("NEEDS_ATTENTION", "it is NEEDS_ATTENTION")])
def test_a_cancel_is_refused_once_the_shipment_is_under_way(status, why):
    with pytest.raises(rules.Refused, match=f"FAILED_PRECONDITION.*{why}"):
        rules.cancel(order(status), "too late", AT)


def test_once_a_cancel_is_accepted_the_saga_may_not_move_the_order_on_but_may_end_it():
    cancelled = order(OrderStatus.AWAITING_APPROVAL)
    rules.cancel(cancelled, "", AT)
    assert not rules.may_enter(cancelled, OrderStatus.CHARGING) and not rules.may_enter(cancelled, OrderStatus.SHIPPING)
    assert rules.may_enter(cancelled, OrderStatus.COMPENSATING) and rules.may_enter(cancelled, OrderStatus.CANCELLED)
    rules.apply_records(cancelled, [record("capture", "STARTED", "CHARGING")], None, AT)
    assert cancelled.status == "AWAITING_APPROVAL"
    rules.apply_records(cancelled, [record("compensate", "STARTED", "COMPENSATING"),
                                    record("finish", "CANCELLED", "CANCELLED")], None, AT)
    assert cancelled.status == "CANCELLED"


def test_the_first_decision_wins():
    waiting = order(OrderStatus.AWAITING_APPROVAL, LARGE)
    assert rules.decision_verdict(waiting, "reject", THRESHOLD) == "accept"
    rules.remember_decision(waiting, "reject", "ann", AT)
    assert rules.decision_verdict(waiting, "reject", THRESHOLD) == "duplicate"
    assert rules.decision_verdict(waiting, "approve", THRESHOLD) == "duplicate"  # the saga has not acted yet
    acted = waiting.model_copy(update={"status": OrderStatus.COMPENSATING})
    assert rules.decision_verdict(acted, "reject", THRESHOLD) == "duplicate"
    with pytest.raises(rules.Refused, match="already decided"):
        rules.decision_verdict(acted, "approve", THRESHOLD)


def test_a_decision_for_an_order_that_waits_for_none_is_refused():
    with pytest.raises(rules.Refused, match="does not need approval"):
        rules.decision_verdict(order(OrderStatus.RESERVING, SMALL), "approve", THRESHOLD)
    with pytest.raises(rules.Refused, match="not waiting for approval: CHARGING"):
        rules.decision_verdict(order(OrderStatus.CHARGING, LARGE), "approve", THRESHOLD)
    # Judged by the threshold frozen with the order, not today's.
    assert rules.decision_verdict(order(OrderStatus.RESERVING, LARGE), "approve", 10**9) == "accept"


def test_the_sagas_entries_are_recorded_once_and_a_terminal_order_stays_terminal():
    shipping = order(OrderStatus.SHIPPING)
    entries = [record("ship", "DONE"), record("complete", "COMPLETED", "COMPLETED", tracking_number="T-1")]
    assert rules.apply_records(shipping, entries, None, AT)
    assert not rules.apply_records(shipping, entries, None, AT)  # a retried activity
    assert (shipping.status, shipping.tracking_number) == ("COMPLETED", "T-1")
    rules.apply_records(shipping, [record("late", "NEEDED", "NEEDS_ATTENTION")], None, AT)
    assert shipping.status == "COMPLETED"


def test_needs_attention_keeps_what_is_left_and_a_retry_resumes_it():
    left = Unfinished(calls=[PlannedCall(step="undo ship", activity="cancel_shipment", input={})],
                      ending=Ending(status="FAILED", reason="SHIPPING_FAILED"), resume_status="COMPENSATING")
    stuck = order(OrderStatus.COMPENSATING)
    rules.apply_records(stuck, [record("attention", "NEEDED", "NEEDS_ATTENTION")], left.model_dump(mode="json"), AT)
    assert stuck.unfinished == left
    assert rules.retry_verdict(stuck) == "start"
    rules.start_retry(stuck, "ann", AT)
    assert (stuck.status, stuck.retries, stuck.saga_instance_id) == ("COMPENSATING", 1, "order-saga-o-1-retry-1")
    assert rules.retry_verdict(stuck) == "running"
    with pytest.raises(rules.Refused, match="only an order that NEEDS_ATTENTION is retried"):
        rules.retry_verdict(order(OrderStatus.FAILED))
    with pytest.raises(rules.Refused, match="close it by hand"):
        rules.retry_verdict(order(OrderStatus.NEEDS_ATTENTION))


def test_a_close_ends_the_order_as_the_saga_would_have_once():
    left = Unfinished(calls=[], ending=Ending(status="COMPLETED", tracking_number="T-9"), resume_status="SHIPPING")
    stuck = order(OrderStatus.NEEDS_ATTENTION, unfinished=left)
    with pytest.raises(rules.Refused, match="INVALID_ARGUMENT"):
        rules.close(stuck, "carl", " ", AT)
    assert rules.close(stuck, "carl", "committed by hand", AT)
    assert (stuck.status, stuck.tracking_number, stuck.unfinished) == ("COMPLETED", "T-9", None)
    assert [e.type for e in stuck.owed_events][-1] == "completed"
    assert not rules.close(stuck, "carl", "again", AT)
    with pytest.raises(rules.Refused, match="only an order that NEEDS_ATTENTION is closed"):
        rules.close(order(OrderStatus.RESERVING), "carl", "x", AT)


def test_an_overdue_order_is_flagged_once_and_only_in_flight():
    late = order(OrderStatus.AWAITING_APPROVAL)
    assert not rules.flag_overdue(late, False, AT)
    assert rules.flag_overdue(late, True, AT) and not rules.flag_overdue(late, True, AT)
    assert [e.type for e in late.owed_events][-1] == "overdue"
    assert not rules.flag_overdue(order(OrderStatus.FAILED), True, AT)


def test_an_ending_the_saga_left_as_its_custom_status_is_recorded_as_it_meant_it():
    finish = StepRecord(order_id="o-1", step="finish", outcome="FAILED", key="finish:FAILED", status="FAILED",
                        reason="OUT_OF_STOCK")
    left = OrderUpdate(order_id="o-1", records=[finish],
                       event=LifecycleEvent(order_id="o-1", type="failed", status="FAILED"))
    stranded = order(OrderStatus.COMPENSATING)
    assert rules.adopt_lost_ending(stranded, "COMPLETED", '"FAILED"', left.model_dump_json(), AT) == "recorded"
    assert (stranded.status, stranded.reason) == ("FAILED", "OUT_OF_STOCK")
    assert stranded.owed_events[-1].type == "failed"


def test_a_saga_gone_without_a_word_leaves_the_order_to_a_person():
    stranded = order(OrderStatus.CHARGING)
    assert rules.adopt_lost_ending(stranded, "GONE", "", "", AT) == "lost"
    assert stranded.status == "NEEDS_ATTENTION" and stranded.unfinished.ending.reason == "INTERNAL_ERROR"
    assert "GONE" in stranded.timeline[-1].detail and stranded.owed_events[-1].type == "needs_attention"
    completed = order(OrderStatus.SHIPPING, tracking_number="T-3")
    rules.adopt_lost_ending(completed, "COMPLETED", '"COMPLETED"', "not json", AT)
    assert completed.unfinished.ending == Ending(status="COMPLETED", tracking_number="T-3")


# ---- parking at the approval gate (saga v3) -------------------------------------------------------

DUE = "2026-01-02T00:00:00.000+00:00"


def parked(**fields):
    waiting = order(OrderStatus.RESERVING, request=LARGE, saga_version="v3", **fields)
    rules.apply_records(waiting, [record("approval", "STARTED", "AWAITING_APPROVAL", parks_until=DUE)], None, AT)
    return waiting


def test_a_saga_that_parks_leaves_the_order_waiting_until_its_due_time():
    waiting = parked()
    assert (waiting.status, waiting.parked, waiting.approval_due, waiting.continuation) == \
        ("AWAITING_APPROVAL", True, DUE, "")
    assert not waiting.owes_continuation


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_for_a_parked_order_is_how_it_goes_on(decision):
    waiting = parked()
    assert rules.decision_verdict(waiting, decision, THRESHOLD) == "accept"
    rules.remember_decision(waiting, decision, "ann", AT)
    assert waiting.continuation == decision and waiting.owes_continuation and waiting.decided_by == "ann"
    assert rules.continued(waiting) == "order-saga-o-1-decided"
    assert not waiting.parked and not waiting.owes_continuation
    assert rules.decision_verdict(waiting, "approve" if decision == "reject" else "reject", THRESHOLD) == "duplicate"


def test_a_decision_ahead_of_the_gate_is_taken_when_the_saga_parks():
    early = order(OrderStatus.RESERVING, request=LARGE, saga_version="v3")
    rules.remember_decision(early, "approve", "ann", AT)
    assert early.continuation == ""  # not parked yet: nothing to start
    rules.apply_records(early, [record("approval", "STARTED", "AWAITING_APPROVAL", parks_until=DUE)], None, AT)
    assert early.parked and early.continuation == "approve" and early.owes_continuation


def test_a_parked_order_times_out_once_its_wait_ended_and_a_late_decision_is_refused():
    waiting = parked()
    assert not rules.time_out(waiting, False, AT)
    assert rules.time_out(waiting, True, AT) and waiting.continuation == "timeout"
    assert not rules.time_out(waiting, True, AT)  # once
    with pytest.raises(rules.Refused, match="no longer waits"):
        rules.decision_verdict(waiting, "approve", THRESHOLD)


def test_a_cancel_of_a_parked_order_is_how_it_goes_on_and_raises_no_event():
    waiting = parked()
    assert rules.cancel(waiting, "changed my mind", AT)
    assert waiting.continuation == "cancel" and not waiting.owes_cancel and waiting.owes_continuation


def test_a_cancel_after_the_decision_leaves_the_decision_in_charge_and_the_gates_refuse():
    waiting = parked()
    rules.remember_decision(waiting, "approve", "ann", AT)
    assert rules.cancel(waiting, "changed my mind", AT)
    assert waiting.continuation == "approve" and not rules.may_enter(waiting, OrderStatus.CHARGING)


def test_the_end_of_a_saga_is_its_final_runtime_status_and_a_retry_clears_it():
    ended = order()
    rules.apply_records(ended, [record("finish", "FAILED", "NEEDS_ATTENTION")],
                        {"calls": [], "ending": {"status": "FAILED"}, "resume_status": "COMPENSATING"}, AT)
    assert ended.saga_final_status == "COMPLETED"
    rules.start_retry(ended, "ops", AT)
    assert ended.saga_final_status == ""
