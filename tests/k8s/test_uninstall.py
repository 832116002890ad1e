"""Last, on purpose: the order nobody approved has timed out (its timer outlived the pod kills and
the rollout), then `helm uninstall` leaves nothing of ours, and a new install over the same
database and Secrets finds every order again."""

from __future__ import annotations

import re
import time

import pytest

from tests.k8s.conftest import APPROVAL_TIMEOUT_S, NAMESPACE, TEST_VALUES
from tests.k8s.paths import steps

# What may stay in the namespace after `helm uninstall`: what Kubernetes puts in every namespace,
# and the user's own Secrets (the README has them made with kubectl, outside the release).
ALLOWED = {"serviceaccount/default", "configmap/kube-root-ca.crt", "secret/ordersaga-connections",
           "secret/ordersaga-dapr-api-token", "secret/ordersaga-app-api-token"}


def everything_in_namespace(kubectl) -> set[str]:
    """Every object of every namespaced kind that can be listed (events aside): the chart's, the
    Dapr operator's (a `<app>-dapr` Service per Deployment), the controllers' (ReplicaSets, pods)."""
    kinds = [k for k in kubectl("api-resources", "--namespaced", "--verbs=list", "-o", "name").split()
             if k not in ("events", "events.events.k8s.io")]
    names = kubectl("-n", NAMESPACE, "get", ",".join(kinds), "-o", "name", "--ignore-not-found").split()
    return {re.sub(r"^([a-z]+)\.[a-z0-9.]+/", r"\1/", name) for name in names}


@pytest.mark.timeout(APPROVAL_TIMEOUT_S + 300)
def test_the_order_nobody_approved_timed_out(saga, timeout_order):
    left = timeout_order["placed_at"] + APPROVAL_TIMEOUT_S + 120 - time.monotonic()
    order = saga.wait_for_status(timeout_order["order_id"], "FAILED", timeout=max(left, 60))
    assert order["reason"] == "APPROVAL_TIMEOUT"
    assert ("approval", "TIMED_OUT") in steps(order)
    assert saga.get_stock(timeout_order["sku"]).reserved == 0


@pytest.mark.timeout(900)
def test_helm_uninstall_leaves_nothing_of_ours_and_a_reinstall_finds_the_orders(installed, saga, kubectl,
                                                                              timeout_order):
    before = everything_in_namespace(kubectl)
    assert {"deployment/order-service", "service/order-service-dapr", "component/order-store"} <= before, before
    installed.uninstall_ordersaga()
    deadline = time.monotonic() + 300
    left = before
    while time.monotonic() < deadline:
        left = everything_in_namespace(kubectl) - ALLOWED
        if not left:
            break
        time.sleep(2)
    assert not left, f"left behind by helm uninstall: {sorted(left)}"
    assert "ordersaga" not in installed.helm_run("listing releases", "list", "--namespace", NAMESPACE, "-q").split()
    assert ALLOWED <= everything_in_namespace(kubectl)  # the user's Secrets are theirs to delete

    installed.install_chart(extra=("--values", str(TEST_VALUES)))
    saga.close()  # the old forward pointed at a pod that is gone
    from ordersaga import kube

    again = kube.kube_client(NAMESPACE)
    try:
        order = again.wait_for_status(timeout_order["order_id"], "FAILED", timeout=120)
        assert order["reason"] == "APPROVAL_TIMEOUT"
    finally:
        again.close()
