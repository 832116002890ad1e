"""Orders that NEED_ATTENTION, on the real stack: RetryOrder runs again what the saga left
unfinished once the cause is fixed, and ends the order as the saga would have; CloseOrder ends an
order whose unfinished work a person did by hand. Both say who and when on the timeline, and both
refuse any other status."""

from __future__ import annotations

import grpc
import pytest

from order_service import orders_pb2 as pb
from tests.helpers.invariants import check_invariants

SMALL = 1_250


def steps(order: dict) -> list[tuple[str, str]]:
    return [(entry["step"], entry["outcome"]) for entry in order["timeline"]]


def stuck_order(saga, ids) -> tuple[str, str, str]:
    """An order whose shipment failed and whose undo keeps failing: NEEDS_ATTENTION, with
    shipping still broken."""
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment", "CancelShipment"))
    saga.place(order_id, customer, [(sku, 1, SMALL)])
    saga.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=100)
    return order_id, sku, customer


@pytest.mark.timeout(300)
def test_a_retry_finishes_the_undo_once_shipping_is_back_and_fails_the_order_as_the_saga_would(saga, ids):
    order_id, sku, customer = stuck_order(saga, ids)
    api = saga.orders()
    try:
        # Still broken: the retry cannot finish either, and says so.
        retried = api.RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator="ann"), timeout=30)
        assert retried.saga_instance_id == f"order-saga-{order_id}-retry-1"
        again = saga.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=100)
        assert again["timeline"][-1]["detail"] == "retry 1 could not: undo ship"
    finally:
        saga.clear_faults("shipping-service")

    api.RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator="bob"), timeout=30)
    order = saga.wait_for_status(order_id, "FAILED", timeout=100)
    assert order["reason"] == "SHIPPING_FAILED", "the saga's own reason"
    requested = [e for e in order["timeline"] if e["step"] == "retry" and e["outcome"] == "REQUESTED"]
    assert [e["detail"] for e in requested] == ["by ann", "by bob"] and all(e["at"] for e in requested)
    assert ("undo ship", "DONE") in steps(order)
    assert saga.get_shipment(order_id).state == "CANCELLED"
    shown = api.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)
    assert (shown.saga_instance_id, shown.saga_runtime_status) == (f"order-saga-{order_id}-retry-2", "COMPLETED")
    check_invariants(saga, {sku: 5}, [order_id])  # nothing reserved or held; the retry agrees with the actor


def test_retry_and_close_refuse_any_other_status_and_bad_input(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.place(order_id, customer, [(sku, 1, SMALL)])
    saga.wait_for_status(order_id, "COMPLETED")
    api = saga.orders()
    for call in (lambda: api.RetryOrder(pb.RetryOrderRequest(order_id=order_id), timeout=30),
                 lambda: api.CloseOrder(pb.CloseOrderRequest(order_id=order_id, note="done"), timeout=30)):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "only an order that NEEDS_ATTENTION" in refused.value.details()
    with pytest.raises(grpc.RpcError) as unknown:
        api.RetryOrder(pb.RetryOrderRequest(order_id=ids("nobody")), timeout=30)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        api.RetryOrder(pb.RetryOrderRequest(order_id="not an id"), timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert saga.get(order_id)["status"] == "COMPLETED", "nothing changed"


@pytest.mark.timeout(300)
def test_an_order_handled_by_hand_is_closed_with_who_and_why(saga, ids):
    order_id, sku, customer = stuck_order(saga, ids)
    saga.clear_faults("shipping-service")
    api = saga.orders()
    with pytest.raises(grpc.RpcError) as no_note:
        api.CloseOrder(pb.CloseOrderRequest(order_id=order_id, operator="carl"), timeout=30)
    assert no_note.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    closed = api.CloseOrder(pb.CloseOrderRequest(order_id=order_id, operator="carl",
                                                 note="carrier confirmed no parcel exists"), timeout=30)
    assert (closed.status, closed.reason) == ("FAILED", "SHIPPING_FAILED")
    last = closed.timeline[-1]
    assert (last.step, last.outcome, last.detail) == ("close", "BY_HAND FAILED",
                                                      "by carl: carrier confirmed no parcel exists")
    # What the saga could undo, it did; the shipment was never created.
    assert saga.get_stock(sku).reserved == 0 and saga.get_credit(customer).held_cents == 0
    with pytest.raises(grpc.RpcError) as twice:
        api.RetryOrder(pb.RetryOrderRequest(order_id=order_id), timeout=30)
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
