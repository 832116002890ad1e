"""Every path of the order saga on the real stack, each followed by DESIGN.md's invariants."""

from __future__ import annotations

import json
import threading
import time

import pytest

from order_service.topics import EVENTS_TOPIC
from ordersaga.client import ActorCallError
from ordersaga.eventfeed import feed_for
from tests.conftest import APPROVAL_TIMEOUT_S
from tests.helpers.invariants import check_invariants

SMALL = 1_250  # cents
LARGE = 150_000  # cents: above the 1000.00 approval threshold


@pytest.fixture(params=["embedded", "production"])
def stack(request):
    """Every path runs on both profiles: SQLite and NATS, and PostgreSQL and Kafka with two
    replicas of every app."""
    return request.getfixturevalue(f"{request.param}_stack")


def steps(order: dict) -> list[tuple[str, str]]:
    return [(entry["step"], entry["outcome"]) for entry in order["timeline"]]


def events_of(stack, order_id: str, count: int) -> list[dict]:
    bodies = feed_for(stack.state()).read_all(EVENTS_TOPIC, lambda body: f'"{order_id}"' in body, count, timeout=30)
    return [json.loads(body) for body in bodies]


def test_completed(saga, stack, ids):
    order_id, sku, other, customer = ids("o"), ids("sku"), ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    saga.set_stock(other, 4)
    saga.place(order_id, customer, [(sku, 2, SMALL), (other, 1, 999)])
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert order["tracking_number"].startswith("TRK-")
    assert saga.get_shipment(order_id).state == "CREATED"
    expected = ["placed", "completed"]
    events = events_of(stack, order_id, len(expected))  # CloudEvent envelopes
    assert sorted(e["data"]["type"] for e in events) == sorted(expected)
    for event in events:  # stable ids, so consumers can deduplicate
        assert event["id"] == f"{order_id}.{event['data']['type']}"
        assert event["type"] == f"ordersaga.order.{event['data']['type']}"
    check_invariants(saga, {sku: 10, other: 4}, [order_id])


def test_approval_approved(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.approve(order_id, approver="alice")
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert ("approval", "APPROVED") in steps(order)
    check_invariants(saga, {sku: 3}, [order_id])


def test_approval_rejected(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.approve(order_id, decision="reject", approver="bob")
    order = saga.wait_for_status(order_id, "FAILED")
    assert order["reason"] == "APPROVAL_REJECTED"
    assert ("undo authorize", "DONE") in steps(order) and (f"undo reserve {sku}", "DONE") in steps(order)
    check_invariants(saga, {sku: 3}, [order_id])


@pytest.mark.timeout(120)
def test_approval_timeout_and_the_deadline_reminder(saga, stack, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    order = saga.wait_for_status(order_id, "FAILED", timeout=APPROVAL_TIMEOUT_S + 40)
    assert order["reason"] == "APPROVAL_TIMEOUT"
    assert ("approval", "TIMED_OUT") in steps(order)
    # The order deadline (12 s) passed while it waited: flagged on the timeline and as an event.
    assert ("deadline", "EXCEEDED") in steps(order)
    assert any(e["data"]["type"] == "overdue" for e in events_of(stack, order_id, 4))
    check_invariants(saga, {sku: 3}, [order_id])


def test_out_of_stock_on_one_of_several_lines(saga, ids):
    order_id, plenty, scarce, customer = ids("o"), ids("sku"), ids("sku"), ids("c")
    saga.set_stock(plenty, 10)
    saga.set_stock(scarce, 1)
    saga.place(order_id, customer, [(plenty, 2, SMALL), (scarce, 2, SMALL)])
    order = saga.wait_for_status(order_id, "FAILED")
    assert order["reason"] == "OUT_OF_STOCK"
    assert (f"reserve {scarce}", "OUT_OF_STOCK") in steps(order)
    check_invariants(saga, {plenty: 10, scarce: 1}, [order_id])


def test_payment_declined(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_credit(customer, 1_000)
    saga.place(order_id, customer, [(sku, 1, SMALL)])
    order = saga.wait_for_status(order_id, "FAILED")
    assert order["reason"] == "PAYMENT_DECLINED"
    assert ("authorize", "PAYMENT_DECLINED") in steps(order)
    check_invariants(saga, {sku: 5}, [order_id])


@pytest.mark.timeout(120)
def test_shipping_failing_after_retries_is_compensated(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment",))
    try:
        saga.place(order_id, customer, [(sku, 2, SMALL)])
        order = saga.wait_for_status(order_id, "FAILED", timeout=90)
    finally:
        saga.clear_faults("shipping-service")
    assert order["reason"] == "SHIPPING_FAILED"
    undone = [step for step, outcome in steps(order) if step.startswith("undo") and outcome == "DONE"]
    assert undone == ["undo ship", "undo capture", "undo authorize", f"undo reserve {sku}"]  # reverse order
    assert saga.get_shipment(order_id).state == "CANCELLED"  # the tombstone a late create respects
    check_invariants(saga, {sku: 5}, [order_id])


@pytest.mark.timeout(120)
def test_a_compensation_that_keeps_failing_needs_attention(saga, stack, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment", "CancelShipment"))
    try:
        saga.place(order_id, customer, [(sku, 1, SMALL)])
        order = saga.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=100)
    finally:
        saga.clear_faults("shipping-service")
    assert "could not undo: ship" in order["timeline"][-1]["detail"]
    assert any(e["data"]["type"] == "needs_attention" for e in events_of(stack, order_id, 2))
    # The other steps were still undone: nothing held, nothing reserved.
    assert saga.get_stock(sku).reserved == 0
    assert saga.get_credit(customer).held_cents == 0


def test_cancel_mid_saga(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 2, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.cancel(order_id, "customer changed their mind")
    order = saga.wait_for_status(order_id, "CANCELLED")
    assert ("cancel", "REQUESTED") in steps(order)
    saga.approve(order_id)  # too late: the saga is over, nothing changes
    check_invariants(saga, {sku: 3}, [order_id])


def test_cancel_after_shipment_is_refused(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.set_faults("shipping-service", delay_seconds=3, methods=("CreateShipment",))
    try:
        saga.place(order_id, customer, [(sku, 1, SMALL)])
        saga.wait_for_status(order_id, "SHIPPING")
        with pytest.raises(ActorCallError, match="FAILED_PRECONDITION"):
            saga.cancel(order_id)
    finally:
        saga.clear_faults("shipping-service")
    saga.wait_for_status(order_id, "COMPLETED")
    with pytest.raises(ActorCallError, match="FAILED_PRECONDITION"):
        saga.cancel(order_id)
    check_invariants(saga, {sku: 3}, [order_id])


def test_the_same_order_placed_twice_runs_one_saga(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(saga.place(order_id, customer, [(sku, 2, SMALL)])))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 5 and len({r["saga_instance_id"] for r in replies}) == 1
    saga.wait_for_status(order_id, "COMPLETED")
    again = saga.place(order_id, customer, [(sku, 2, SMALL)])  # after completion: still the same order
    assert again["status"] == "COMPLETED"
    with pytest.raises(ActorCallError, match="ALREADY_EXISTS"):
        saga.place(order_id, customer, [(sku, 3, SMALL)])
    time.sleep(1)
    assert saga.wait_for_saga(order_id) == "COMPLETED"
    check_invariants(saga, {sku: 10}, [order_id])  # stock taken once, charged once


@pytest.mark.timeout(180)
def test_twenty_concurrent_orders_for_five_in_stock(saga, ids):
    sku = ids("sku")
    saga.set_stock(sku, 5)
    orders = [(ids("o"), ids("c")) for _ in range(20)]
    errors = []

    def place(order_id, customer):
        try:
            saga.place(order_id, customer, [(sku, 1, SMALL)])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=place, args=order) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    final = check_invariants(saga, {sku: 5}, [o for o, _ in orders])
    statuses = sorted(order["status"] for order in final.values())
    assert statuses.count("COMPLETED") == 5, statuses
    assert statuses.count("FAILED") == 15
    assert {o["reason"] for o in final.values() if o["status"] == "FAILED"} == {"OUT_OF_STOCK"}
