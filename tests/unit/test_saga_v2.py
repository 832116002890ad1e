"""Saga v2 (the latest) on dapr_saga's harness: the same business decisions as v1 in 5
activities, the reservation gated by the actor, the completion riding with the commit."""

from __future__ import annotations

from dapr_saga import StepResult as KitResult

from order_service.activities import EventNotPublished, ServiceUnavailable
from order_service.domain import Ending
from tests.helpers.saga_harness import (
    fails,
    lines_answer,
    pinned,
    published,
    records,
    saga_input,
    timeline,
    undo_calls,
    updates,
    world,
)

run_saga = pinned("v2")  # v2's tests (the latest, v3, parks at the approval gate)
DOWN = fails(ServiceUnavailable("down"))


def test_happy_path_in_five_activities_and_four_actor_updates():
    run = run_saga(world(), saga_input("a", "b", "c"))
    assert run.result == "COMPLETED" and run.version == "v2"
    assert run.activities() == [
        "reserve_lines", "authorize_payment", "capture_payment", "create_shipment", "finish_order"]
    assert [[r.status for r in u.records if r.status] for u in updates(run)] == [
        ["RESERVING"], ["CHARGING"], ["SHIPPING"], ["COMPLETED"]]
    assert timeline(run) == [
        ("reserve", "STARTED"), ("reserve a", "DONE"), ("reserve b", "DONE"), ("reserve c", "DONE"),
        ("authorize", "DONE"), ("capture", "STARTED"), ("capture", "DONE"), ("ship", "STARTED"), ("ship", "DONE"),
        ("commit", "DONE"), ("complete", "COMPLETED"),
    ]
    # The actor announces the order; the saga announces its end, with the completion.
    assert published(run) == ["completed"]
    (finish,) = [c.input for c in run.called("finish_order")]
    assert [line.sku for line in finish.commit.lines] == ["a", "b", "c"] and finish.commit.enter is None
    assert finish.complete.records[-1].tracking_number == "TRK-1"


def test_out_of_stock_reserves_nothing_so_only_the_hold_is_undone():
    run = run_saga(world(reserve_lines=lines_answer(ok=False, reason="OUT_OF_STOCK", short=("b",))),
                   saga_input("a", "b"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["void_payment"]
    assert ("reserve b", "OUT_OF_STOCK") in timeline(run) and ("reserve a", "NOT_RESERVED") in timeline(run)
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["OUT_OF_STOCK"]


def test_payment_declined_releases_the_lines():
    run = run_saga(world(authorize_payment=lambda p: KitResult.no("PAYMENT_DECLINED")), saga_input("a", "b"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["release_lines"]
    assert ("undo reserve a", "DONE") in timeline(run) and ("undo reserve b", "DONE") in timeline(run)


def test_a_reservation_that_failed_technically_is_released_because_it_may_have_landed():
    run = run_saga(world(reserve_lines=DOWN), saga_input("a"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["void_payment", "release_lines"]
    (release,) = [c.input for c in run.called("release_lines")]
    assert release.enter is None
    assert [r.reason for r in records(run) if r.status == "FAILED"] == ["INVENTORY_UNAVAILABLE"]


def test_shipping_failure_undoes_everything_in_reverse():
    run = run_saga(world(create_shipment=DOWN), saga_input("a", "b"))
    assert run.result == "FAILED"
    assert undo_calls(run) == ["cancel_shipment", "refund_payment", "void_payment", "release_lines"]
    assert "finish_order" not in run.activities()


def test_a_cancel_accepted_before_the_reservation_unwinds_the_hold():
    run = run_saga(world(reserve_lines=lambda batch: KitResult.refused()), saga_input("a"))
    assert run.result == "CANCELLED"
    # The gate refused: nothing was reserved, but an earlier attempt may have been, so it is released.
    assert undo_calls(run) == ["void_payment", "release_lines"]


def test_a_commit_that_keeps_failing_needs_attention_with_the_commit_left_to_do():
    run = run_saga(world(finish_order=DOWN), saga_input("a", "b"))
    assert run.result == "NEEDS_ATTENTION"
    (update,) = [u for u in updates(run) if u.unfinished]
    unfinished = update.unfinished
    assert [(c.step, c.activity) for c in unfinished.calls] == [("commit", "commit_lines")]
    assert [line["sku"] for line in unfinished.calls[0].input["lines"]] == ["a", "b"]
    assert unfinished.ending == Ending(status="COMPLETED", tracking_number="TRK-1")
    assert unfinished.resume_status == "SHIPPING"
    assert ("complete", "COMPLETED") not in timeline(run)  # never recorded: the commit did not happen
    assert ("commit", "UNKNOWN") in timeline(run)


def test_a_completed_event_the_broker_refused_is_noted_and_the_order_completes():
    run = run_saga(world(finish_order=fails(EventNotPublished("completed: nats: no servers available"))),
                   saga_input("a"))
    assert run.result == "COMPLETED"
    assert ("event completed", "UNPUBLISHED") in timeline(run)
