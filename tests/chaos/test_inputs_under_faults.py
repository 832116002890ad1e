"""Duplicate and out-of-order inputs while processes die, and services slower than the saga's
patience: never a second saga, never a double charge, late successes compensated."""

from __future__ import annotations

import threading
import time

import pytest

from order_service.topics import APPROVALS_TOPIC
from tests.conftest import APPROVAL_TIMEOUT_S
from tests.helpers.invariants import check_invariants

LARGE = 150_000


@pytest.mark.timeout(300)
def test_approvals_published_many_times_while_order_service_is_down(stack, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    stack.kill("order-service")
    # Duplicates only: across sidecars the broker defines no order, so a contrary decision
    # sent now could legitimately be the first one order-service sees.
    for via in ("inventory-service", "payment-service", "shipping-service") * 3:
        saga.approve(order_id, approver="impatient", via=via)
    stack.up(timeout=120)
    order = check_invariants(saga, {sku: 3}, [order_id], bound_s=120)[order_id]
    assert order["status"] == "COMPLETED"
    assert [e["outcome"] for e in order["timeline"] if e["step"] == "approval"].count("RECEIVED") == 1


@pytest.mark.timeout(300)
def test_place_repeated_concurrently_while_inventory_restarts(stack, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 4)
    errors = []

    def place():
        for _ in range(10):
            try:
                saga.place(order_id, customer, [(sku, 2, 1_000)])
                return
            except Exception as error:  # noqa: BLE001 - a client retries a refused call
                errors.append(error)
                time.sleep(0.5)

    threads = [threading.Thread(target=place) for _ in range(8)]
    for thread in threads:
        thread.start()
    stack.kill("inventory-service")
    for thread in threads:
        thread.join()
    stack.up(timeout=120)
    final = check_invariants(saga, {sku: 4}, [order_id], bound_s=120)
    assert final[order_id]["timeline"][0]["step"] == "place"
    assert [e["step"] for e in final[order_id]["timeline"]].count("place") == 1
    saga.place(order_id, customer, [(sku, 2, 1_000)])  # after the end: still one saga
    assert saga.wait_for_saga(order_id) == "COMPLETED"
    check_invariants(saga, {sku: 4}, [order_id])


@pytest.mark.timeout(300)
def test_an_approval_after_the_timeout_changes_nothing(stack, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "FAILED", timeout=APPROVAL_TIMEOUT_S + 60)
    saga.publish(APPROVALS_TOPIC, f'{{"order_id": "{order_id}", "decision": "approve"}}'.encode())
    time.sleep(2)
    order = check_invariants(saga, {sku: 3}, [order_id])[order_id]
    assert order["reason"] == "APPROVAL_TIMEOUT"


@pytest.mark.timeout(300)
def test_a_success_that_arrives_after_the_step_timeout_is_compensated(stack, saga, ids):
    """inventory-service reserves, then answers after the saga gave up (15 s step timeout)."""
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("inventory-service", delay_after_seconds=17, methods=("ReserveLines",))
    try:
        saga.place(order_id, customer, [(sku, 2, 1_000)])
        order = saga.wait_for_status(order_id, "FAILED", timeout=120)
    finally:
        saga.clear_faults("inventory-service")
    assert order["reason"] == "INVENTORY_UNAVAILABLE"
    time.sleep(20)  # let every late reply land
    check_invariants(saga, {sku: 5}, [order_id])  # the late reservation was released


@pytest.mark.timeout(300)
def test_a_call_that_starts_after_its_undo_does_nothing(stack, saga, ids):
    """The reservation reaches inventory-service only after the saga released it: the release
    left a tombstone, so the late reservation is refused and stock never leaks."""
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    saga.set_faults("inventory-service", delay_seconds=17, methods=("ReserveLines",))
    try:
        saga.place(order_id, customer, [(sku, 2, 1_000)])
        order = saga.wait_for_status(order_id, "FAILED", timeout=120)
        assert order["reason"] == "INVENTORY_UNAVAILABLE"
        time.sleep(20)  # the held calls now run, after the undo
    finally:
        saga.clear_faults("inventory-service")
    check_invariants(saga, {sku: 5}, [order_id])
    assert saga.get_stock(sku).reserved == 0
