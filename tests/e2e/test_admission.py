"""Admission control on the real stack (order_service/admission.py): with a limit of 3 sagas at
work, a 4th order is refused at once with RESOURCE_EXHAUSTED, a message and a retry hint, and
nothing is stored; an order request published meanwhile waits in the broker and is placed once
sagas have ended; parked orders do not count."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from order_service import orders_pb2 as pb
from order_service.topics import REQUESTS_TOPIC
from ordersaga.client import TERMINAL
from ordersaga.stack import processes
from tests.helpers.invariants import check_invariants

LIMIT = 3
SMALL, LARGE = 1_250, 150_000


def restart_order_service(stack, **env) -> None:
    for name, value in env.items():
        if value is None:
            stack.extra_env.pop(name, None)
        else:
            stack.extra_env[name] = value
    processes.stop(stack.state().processes["order-service"], timeout=30)
    stack.up(timeout=120)


@pytest.fixture()
def limited(stack):
    restart_order_service(stack, ORDERSAGA_MAX_ACTIVE_SAGAS=str(LIMIT))
    yield
    restart_order_service(stack, ORDERSAGA_MAX_ACTIVE_SAGAS=None)


def place(api, order_id, customer, sku, price=SMALL):
    request = pb.PlaceOrderRequest(order_id=order_id, customer_id=customer,
                                   items=[pb.LineItem(sku=sku, quantity=1, unit_price_cents=price)])
    return api.PlaceOrder.with_call(request, timeout=30)


@pytest.mark.timeout(300)
def test_a_new_order_past_the_limit_is_refused_at_once_and_a_published_one_waits(stack, saga, ids, limited):
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 20)
    api = saga.orders()
    parked = ids("o")
    place(api, parked, customer, sku, price=LARGE)  # waits for approval: not at work
    saga.wait_for_status(parked, "AWAITING_APPROVAL")

    saga.set_faults("shipping-service", delay_seconds=6, methods=("CreateShipment",))
    try:
        held = [ids("o") for _ in range(LIMIT)]
        for order_id in held:
            place(api, order_id, customer, sku)
        refused = ids("o")
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            place(api, refused, customer, sku)
        took_ms = (time.monotonic() - started) * 1000
        queued = ids("o")
        saga.publish(REQUESTS_TOPIC, json.dumps({"order_id": queued, "customer_id": customer, "items": [
            {"sku": sku, "quantity": 1, "unit_price_cents": SMALL}]}).encode())
        time.sleep(2)
        assert saga.get(queued) is None, "the published order came in past the limit"
    finally:
        saga.clear_faults("shipping-service")

    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{LIMIT} sagas are at work" in error.value.details() and "retry in about" in error.value.details()
    assert ("grpc-retry-pushback-ms", "500") in (error.value.trailing_metadata() or ())
    assert took_ms < 1000, f"the refusal took {took_ms:.0f} ms"
    assert saga.get(refused) is None, "a refused order was stored"

    for order_id in held:
        saga.wait_for_status(order_id, "COMPLETED")
    saga.wait_for_status(queued, "COMPLETED", timeout=120)  # redelivered once sagas had ended
    place(api, refused, customer, sku)  # the refused order, again: taken now
    saga.wait_for_status(refused, "COMPLETED")
    saga.approve(parked, approver="admission")
    saga.wait_for_status(parked, "COMPLETED")
    check_invariants(saga, {sku: 20}, held + [refused, queued, parked])


def place_when_admitted(api, order_id, customer, sku, timeout_s=60) -> int:
    """PlaceOrder until it is taken (a refusal is admission control working); how many refusals."""
    refusals, deadline = 0, time.monotonic() + timeout_s
    while True:
        try:
            place(api, order_id, customer, sku)
            return refusals
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            refusals += 1
            time.sleep(0.5)


@pytest.mark.timeout(420)
def test_a_shipping_outage_does_not_stop_intake(stack, saga, ids, limited):
    """Issue 22: orders retrying their shipment (and then its undo) during an outage wait out
    backoffs, which cost nothing: they must not fill the limit and refuse every new order. (The
    old count refused the 4th order in the outage until two of the first three had given up.)"""
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 20)
    api = saga.orders()
    saga.set_faults("shipping-service", error_rate=1.0)
    try:
        stuck = [ids("o") for _ in range(LIMIT + 1)]  # more orders in the outage than the limit
        for order_id in stuck:  # a first attempt at a step counts: the 4th may wait for one to fail
            place_when_admitted(api, order_id, customer, sku)
        saga.wait_for_status(stuck[-1], "SHIPPING", timeout=60)
        time.sleep(4)  # its first shipment attempt has failed too (the sidecar retries it ~2.5 s)
        in_flight = [o for o in stuck if saga.get(o)["status"] not in TERMINAL]
        new = [ids("o") for _ in range(LIMIT - 1)]
        for order_id in new:  # the old count refused these while the outage lasted
            place(api, order_id, customer, sku)
        still = [o for o in stuck if saga.get(o)["status"] not in TERMINAL]
    finally:
        saga.clear_faults("shipping-service")
    assert len(in_flight) >= LIMIT and len(still) >= LIMIT, (
        f"only {len(still)} orders were retrying their shipment: the test proved nothing")
    for order_id in stuck + new:
        saga.wait_for_status(order_id, TERMINAL, timeout=180)
