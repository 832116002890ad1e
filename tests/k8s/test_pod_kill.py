"""An order-service pod taken away while sagas run and others wait for approval, with two
replicas: deleted as an operator or a node drain would (SIGTERM, then the Deployment replaces
it), and crashed (its app and sidecar processes killed with SIGKILL on the node; the kubelet
restarts them). Every order ends, the approvals published after the fault land, DESIGN.md's
invariants hold, and the takeover time is printed."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.helpers.invariants import check_invariants
from tests.k8s.conftest import NAMESPACE, ORDER_REPLICAS, host_pid, pods_of, wait_ready
from tests.k8s.paths import LARGE, SMALL
from tests.production.scenario import spread, wait_terminal


def _retrying(action, what: str, bound_s: float = 120) -> None:
    """Publish or call through the forwarded sidecar, again while it is being replaced."""
    deadline = time.monotonic() + bound_s
    while True:
        try:
            return action()
        except Exception:  # noqa: BLE001 - a sidecar in the middle of a takeover
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} still failing after {bound_s}s") from None
            time.sleep(1)


def _park_and_run(saga, ids, count: int = 4) -> tuple[str, str, list[str], list[str]]:
    """`count` orders mid-shipment (shipments held 5 s) and `count` waiting for approval."""
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 100)
    in_flight = [ids("o") for _ in range(count)]
    waiting = [ids("o") for _ in range(count)]
    saga.set_faults("shipping-service", delay_seconds=5, methods=("CreateShipment",))
    for order_id in waiting:
        saga.place(order_id, customer, [(sku, 1, LARGE)])
    for order_id in waiting:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    for order_id in in_flight:
        saga.place(order_id, customer, [(sku, 1, SMALL)])
    for order_id in in_flight:
        saga.wait_for_status(order_id, {"SHIPPING", "COMPLETED"}, timeout=120)
    return sku, customer, in_flight, waiting


def _ran_on(kubectl, pod: str, orders: list[str]) -> list[str]:
    log = kubectl("-n", NAMESPACE, "logs", pod, "-c", "app", check=False)
    return [o for o in orders if f"order={o} " in log]


def _finish(saga, kubectl, fault: str, killed_at: float, sku: str, in_flight: list[str], waiting: list[str],
            on_victim: list[str], measured) -> None:
    for order_id in waiting:  # published after the fault, through whatever sidecar the forward reaches
        _retrying(lambda o=order_id: saga.approve(o, approver="k8s-takeover"), f"approving {order_id}")
    approvals_sent = time.monotonic() - killed_at
    finished = wait_terminal(saga, in_flight + waiting, since=killed_at, bound_s=300)
    final = check_invariants(saga, {sku: 100}, in_flight + waiting, bound_s=120)
    assert {o["status"] for o in final.values()} == {"COMPLETED"}, {k: o["status"] for k, o in final.items()}
    measured(f"kubernetes takeover ({fault}): {len(in_flight)} sagas mid-shipment and {len(waiting)} waiting for "
             f"approval, {len(on_victim)} of them had run steps on the victim; approvals published "
             f"{approvals_sent:.1f}s after it; ended after: in flight {spread([finished[o] for o in in_flight])}, "
             f"approved {spread([finished[o] for o in waiting])}; takeover within {max(finished.values()):.1f}s")


@pytest.mark.timeout(900)
def test_a_deleted_order_service_pod_is_taken_over(saga, kubectl, ids, measured):
    wait_ready(kubectl, "order-service", ORDER_REPLICAS)
    try:
        sku, customer, in_flight, waiting = _park_and_run(saga, ids)
        victim = pods_of(kubectl, "order-service")[0]
        on_victim = _ran_on(kubectl, victim, in_flight + waiting)
        killed_at = time.monotonic()
        kubectl("-n", NAMESPACE, "delete", "pod", victim, "--wait=false")
    finally:
        _retrying(lambda: saga.clear_faults("shipping-service"), "clearing the shipping delay")
    assert on_victim, f"{victim} ran none of these sagas: nothing was taken over"
    _finish(saga, kubectl, f"pod {victim} deleted", killed_at, sku, in_flight, waiting, on_victim, measured)
    wait_ready(kubectl, "order-service", ORDER_REPLICAS)
    assert victim not in pods_of(kubectl, "order-service")


@pytest.mark.timeout(900)
def test_an_order_service_pod_killed_with_sigkill_is_taken_over(installed, saga, kubectl, ids, measured):
    wait_ready(kubectl, "order-service", ORDER_REPLICAS)
    try:
        sku, customer, in_flight, waiting = _park_and_run(saga, ids)
        victim = pods_of(kubectl, "order-service")[-1]
        on_victim = _ran_on(kubectl, victim, in_flight + waiting)
        restarts = kubectl("-n", NAMESPACE, "get", "pod", victim, "-o",
                           "jsonpath={.status.containerStatuses[*].restartCount}").split()
        pids = [host_pid(installed, victim, container) for container in ("app", "daprd")]
        killed_at = time.monotonic()
        for pid in pids:  # a crash: no signal handler runs, no graceful shutdown of either process
            os.kill(pid, signal.SIGKILL)
    finally:
        _retrying(lambda: saga.clear_faults("shipping-service"), "clearing the shipping delay")
    assert on_victim, f"{victim} ran none of these sagas: nothing was taken over"
    _finish(saga, kubectl, f"app and daprd of {victim} killed with SIGKILL", killed_at, sku, in_flight, waiting,
            on_victim, measured)
    wait_ready(kubectl, "order-service", ORDER_REPLICAS)
    after = kubectl("-n", NAMESPACE, "get", "pod", victim, "-o",
                    "jsonpath={.status.containerStatuses[*].restartCount}").split()
    assert sum(map(int, after)) >= sum(map(int, restarts)) + 2, (restarts, after)  # the kubelet restarted both
