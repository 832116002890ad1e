"""Finished sagas' workflow histories are purged after the retention time (the Configuration's
stateRetentionPolicy; ORDERSAGA_WORKFLOW_RETENTION_S for a stack), while the order, its status
and its timeline stay on its actor; a repeated PlaceOrder of a purged order starts nothing."""

from __future__ import annotations

import time

import pytest

from order_service import orders_pb2 as pb
from ordersaga.stack import processes
from ordersaga.stack.profiles import RETENTION_ENV

RETENTION_S = 3


def restart_order_service_and_sidecar(stack, retention: str | None) -> None:
    if retention:
        stack.extra_env[RETENTION_ENV] = retention
    else:
        stack.extra_env.pop(RETENTION_ENV, None)
    running = stack.state().processes
    for name in ("order-service", "order-service-daprd"):
        processes.stop(running[name], timeout=30)
    stack.up(timeout=120)


@pytest.fixture()
def short_retention(stack):
    restart_order_service_and_sidecar(stack, str(RETENTION_S))
    yield
    restart_order_service_and_sidecar(stack, None)


@pytest.mark.timeout(300)
def test_a_finished_saga_is_purged_and_its_order_stays(stack, saga, ids, short_retention):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 5)
    items = [(sku, 1, 1_250)]
    saga.place(order_id, customer, items)
    saga.wait_for_status(order_id, "COMPLETED")
    deadline = time.monotonic() + 60
    while saga.workflow_state(order_id) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert saga.workflow_state(order_id) is None, f"the workflow of {order_id} was not purged"

    order = saga.orders().GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)
    assert order.status == "COMPLETED" and order.saga_runtime_status == "PURGED"
    assert ("complete", "COMPLETED") in [(e.step, e.outcome) for e in order.timeline]

    saga.place(order_id, customer, items)  # the same order again: nothing starts
    time.sleep(3)
    assert saga.workflow_state(order_id) is None
    assert saga.get_stock(sku).on_hand == 4
