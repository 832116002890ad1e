"""A sidecar that restarts under a live app (its daprd killed, the app kept) must not let the app
serve the actors it held before from memory: while that sidecar was down its actors lived on the
other replica and moved on there; when it comes back, placement hands them back to this app.

Found by the kill matrix on two replicas (a kill of order-service's first sidecar): an order the
saga completed on the other replica read RESERVING for good, the state its actor had in the
first replica's memory. The SDK's actor host keeps its active actors across a reconnection of
its event stream; order_service/actor_host.py forgets them when a stream ends."""

from __future__ import annotations

import time

import pytest

from ordersaga.client import SagaClient
from tests.chaos.test_kill_matrix import LARGE
from tests.helpers.verdict import EVIDENCE

ORDERS = 8  # placement spreads them over both replicas: one in 256 runs puts none on the first
WATCH_S = 20


def hosted_on_first_replica(stack, order_ids: list[str]) -> list[str]:
    """The orders whose actor the first replica's app activated (the actor logs its place)."""
    log = (stack.run_dir / "logs" / "order-service.log").read_text(errors="replace")
    return [order_id for order_id in order_ids if f"order={order_id} step=place" in log]


@pytest.mark.timeout(900)
def test_a_restarted_sidecar_never_lets_its_app_serve_stale_actors(fault_stacks, ids, tally):
    stack = fault_stacks.get("production")
    saga = SagaClient(stack.state())
    sku = ids("sku")
    saga.set_stock(sku, ORDERS)
    orders = [ids("o") for _ in range(ORDERS)]
    for order_id in orders:
        saga.place(order_id, ids("c"), [(sku, 1, LARGE)])
    for order_id in orders:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=60)
    held = hosted_on_first_replica(stack, orders)
    assert held, "no order's actor was activated on the first replica: nothing to check (rerun)"

    stack.kill("order-service-daprd")  # the app keeps running, with the actors it holds
    try:
        for order_id in orders:  # their actors now live on the second replica
            saga.approve(order_id, approver="chaos")
        for order_id in orders:
            saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    finally:
        stack.up(timeout=120)  # the same ports: placement hands the first replica its actors back

    stale = {}
    deadline = time.monotonic() + WATCH_S
    while time.monotonic() < deadline:
        for order_id in held:
            try:
                status = saga.get(order_id)["status"]
            except Exception:  # noqa: BLE001 - the restarted sidecar joins placement in a moment
                continue
            if status != "COMPLETED":
                stale[order_id] = status
        time.sleep(0.5)
    if stale:
        tally.count("sidecar restarts (production)", 1, len(orders), 1)
        EVIDENCE.append((stack, [f"stale actors after order-service-daprd restarted: {stale}"]))
    else:
        tally.count("sidecar restarts (production)", 1, len(orders), 0)
    print(f"sidecar restart: {len(held)} of {ORDERS} actors had been on the first replica; "
          f"stale reads after it came back: {stale or 'none'}")
    assert not stale, f"orders COMPLETED elsewhere read from the first replica's memory: {stale}"
