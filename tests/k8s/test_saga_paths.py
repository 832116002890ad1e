"""Every path of the order saga on Kubernetes, each followed by DESIGN.md's invariants: the same
scenarios as tests/e2e, through the deployed system's public doors (a port-forward to a sidecar,
pub/sub for approvals, the services' fault settings for the failures)."""

from __future__ import annotations

import pytest

from ordersaga.client import ActorCallError
from tests.helpers.invariants import check_invariants
from tests.k8s.paths import LARGE, SMALL, event_feed, events_of, steps


@pytest.fixture(scope="module")
def feed(installed):
    return event_feed(installed)


@pytest.mark.timeout(300)
def test_completed(saga, feed, ids, timeout_order):
    order_id, sku, other, customer = ids("o"), ids("sku"), ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    saga.set_stock(other, 4)
    saga.place(order_id, customer, [(sku, 2, SMALL), (other, 1, 999)])
    order = saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    assert order["tracking_number"].startswith("TRK-")
    assert saga.get_shipment(order_id).state == "CREATED"
    events = events_of(feed, order_id, 2)
    assert sorted(e["data"]["type"] for e in events) == ["completed", "placed"]
    check_invariants(saga, {sku: 10, other: 4}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_approval_approved(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    saga.approve(order_id, approver="alice")
    order = saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    assert ("approval", "APPROVED") in steps(order)
    check_invariants(saga, {sku: 3}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_approval_rejected(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    saga.approve(order_id, decision="reject", approver="bob")
    order = saga.wait_for_status(order_id, "FAILED", timeout=120)
    assert order["reason"] == "APPROVAL_REJECTED"
    assert ("undo authorize", "DONE") in steps(order) and (f"undo reserve {sku}", "DONE") in steps(order)
    check_invariants(saga, {sku: 3}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_out_of_stock_on_one_of_several_lines(saga, ids):
    order_id, plenty, scarce, customer = ids("o"), ids("sku"), ids("sku"), ids("c")
    saga.set_stock(plenty, 10)
    saga.set_stock(scarce, 1)
    saga.place(order_id, customer, [(plenty, 2, SMALL), (scarce, 2, SMALL)])
    order = saga.wait_for_status(order_id, "FAILED", timeout=120)
    assert order["reason"] == "OUT_OF_STOCK"
    assert (f"reserve {scarce}", "OUT_OF_STOCK") in steps(order)
    check_invariants(saga, {plenty: 10, scarce: 1}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_payment_declined(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_credit(customer, 1_000)
    saga.place(order_id, customer, [(sku, 1, SMALL)])
    order = saga.wait_for_status(order_id, "FAILED", timeout=120)
    assert order["reason"] == "PAYMENT_DECLINED"
    assert ("authorize", "PAYMENT_DECLINED") in steps(order)
    check_invariants(saga, {sku: 5}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_shipping_failing_after_retries_is_compensated(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment",))
    try:
        saga.place(order_id, customer, [(sku, 2, SMALL)])
        order = saga.wait_for_status(order_id, "FAILED", timeout=180)
    finally:
        saga.clear_faults("shipping-service")
    assert order["reason"] == "SHIPPING_FAILED"
    undone = [step for step, outcome in steps(order) if step.startswith("undo") and outcome == "DONE"]
    assert undone == ["undo ship", "undo capture", "undo authorize", f"undo reserve {sku}"]
    assert saga.get_shipment(order_id).state == "CANCELLED"
    check_invariants(saga, {sku: 5}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_a_compensation_that_keeps_failing_needs_attention_and_a_retry_finishes_it(saga, feed, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment", "CancelShipment"))
    try:
        saga.place(order_id, customer, [(sku, 1, SMALL)])
        order = saga.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=200)
    finally:
        saga.clear_faults("shipping-service")
    assert "could not undo: ship" in order["timeline"][-1]["detail"]
    assert any(e["data"]["type"] == "needs_attention" for e in events_of(feed, order_id, 2))
    assert saga.get_stock(sku).reserved == 0 and saga.get_credit(customer).held_cents == 0
    from order_service import orders_pb2 as pb

    saga.orders().RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator="k8s-test"), timeout=30)
    order = saga.wait_for_status(order_id, "FAILED", timeout=120)
    assert order["reason"] == "SHIPPING_FAILED"
    check_invariants(saga, {sku: 5}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_cancel_while_waiting_for_approval(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 2, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    saga.cancel(order_id, "customer changed their mind")
    order = saga.wait_for_status(order_id, "CANCELLED", timeout=120)
    assert ("cancel", "REQUESTED") in steps(order)
    saga.approve(order_id)  # too late: the saga is over, nothing changes
    check_invariants(saga, {sku: 3}, [order_id], bound_s=120)


@pytest.mark.timeout(300)
def test_cancel_after_shipment_is_refused(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.set_faults("shipping-service", delay_seconds=5, methods=("CreateShipment",))
    try:
        saga.place(order_id, customer, [(sku, 1, SMALL)])
        saga.wait_for_status(order_id, "SHIPPING", timeout=120)
        with pytest.raises(ActorCallError, match="FAILED_PRECONDITION"):
            saga.cancel(order_id)
    finally:
        saga.clear_faults("shipping-service")
    saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    check_invariants(saga, {sku: 3}, [order_id], bound_s=120)
