"""A release that changes the saga, with sagas in flight (docs/changing-the-saga.md).

Orders wait at the approval gate under the latest version; order-service restarts with a newer
one registered beside it (tests/e2e/upgrade_saga.py: the latest and one more step); the parked
orders finish on their version's steps and new orders take the new ones. A saga whose version a
later release drops shows STALLED (status and a timeline entry naming the version) instead of
hanging silently, and resumes once that version is deployed again."""

from __future__ import annotations

import time

import pytest

from order_service import orders_pb2 as pb
from ordersaga.stack import processes
from ordersaga.stack.runtime import project_root
from tests.e2e.upgrade_saga import EXTRA_SAGA_VERSION, EXTRA_STEP, VERSION
from tests.helpers.invariants import check_invariants

LARGE, SMALL = 150_000, 1_250


def steps(order: dict) -> list[tuple[str, str]]:
    return [(entry["step"], entry["outcome"]) for entry in order["timeline"]]


def release(stack, *, with_test_version: bool) -> None:
    """Restart order-service (a clean stop, as a deployment does) with or without next-test."""
    extra = {"ORDERSAGA_EXTRA_SAGA_VERSION": EXTRA_SAGA_VERSION, "PYTHONPATH": str(project_root())}
    if with_test_version:
        stack.extra_env.update(extra)
    else:
        for name in extra:
            stack.extra_env.pop(name, None)
    processes.stop(stack.state().processes["order-service"], timeout=30)
    stack.up(timeout=120)


def wait_for(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not after {timeout}s: {what}")


@pytest.mark.timeout(900)
def test_a_new_saga_version_leaves_sagas_in_flight_on_theirs_and_a_missing_one_stalls_visibly(stack, saga, ids):
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 20)
    parked = [ids("o") for _ in range(2)]
    for order_id in parked:  # under the latest version
        saga.place(order_id, customer, [(sku, 1, LARGE)])
    for order_id in parked:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    fresh, stranded = ids("o"), ids("o")
    try:
        release(stack, with_test_version=True)
        saga.place(fresh, customer, [(sku, 1, SMALL)])
        saga.wait_for_status(fresh, "COMPLETED")
        wait_for(lambda: EXTRA_STEP in steps(saga.get(fresh)), "the new order takes the new version's step")

        for order_id in parked:
            saga.approve(order_id, approver="upgrade")
        for order_id in parked:
            saga.wait_for_status(order_id, "COMPLETED")
            saga.wait_for_saga(order_id)
            assert EXTRA_STEP not in steps(saga.get(order_id)), f"{order_id} must finish on the version it started on"

        # A saga of next-test, parked; then a release without next-test.
        saga.place(stranded, customer, [(sku, 1, LARGE)])
        saga.wait_for_status(stranded, "AWAITING_APPROVAL")
        release(stack, with_test_version=False)
        saga.approve(stranded, approver="upgrade")
        api = saga.orders()
        shown = wait_for(lambda: (o := api.GetOrder(pb.GetOrderRequest(order_id=stranded), timeout=30))
                         .saga_runtime_status == "STALLED" and o, "the stranded saga shows STALLED")
        (entry,) = [e for e in shown.timeline if (e.step, e.outcome) == ("saga", "STALLED")]
        assert f"version {VERSION}" in entry.detail and "deploy it again" in entry.detail
        # ListOrders answers from the orders index alone; its stuck listing asks the engine, and
        # names the stalled saga once its decision has waited ORDERSAGA_STUCK_AFTER_S (5 s here).
        listed = wait_for(lambda: [o for o in api.ListOrders(pb.ListOrdersRequest(
            status="AWAITING_APPROVAL", customer_id=customer, stuck=True), timeout=120).orders
            if o.order_id == stranded], "the stranded saga is listed as stuck")
        assert listed[0].saga_runtime_status == "STALLED" and listed[0].stuck_reason.startswith("STALLED:")

        release(stack, with_test_version=True)  # deployed again: the saga resumes where it stopped
        saga.wait_for_status(stranded, "COMPLETED", timeout=120)
        wait_for(lambda: EXTRA_STEP in steps(saga.get(stranded)), "the stranded order ends on its version")
        check_invariants(saga, {sku: 20}, [*parked, fresh, stranded])
    finally:
        release(stack, with_test_version=False)
