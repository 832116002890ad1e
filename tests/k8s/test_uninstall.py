"""Last, on purpose: the order nobody approved has timed out (its timer outlived the pod kills and
the rollout), then `helm uninstall` leaves nothing of ours, and a new install over the same
database and Secrets finds every order again."""

from __future__ import annotations

import time

import pytest

from tests.k8s.conftest import APPROVAL_TIMEOUT_S, NAMESPACE, TEST_VALUES
from tests.k8s.paths import steps

RELEASE_LABEL = "app.kubernetes.io/instance=ordersaga"
# Everything the chart makes (templates/): Deployments and their pods, the ServiceAccount, the
# Dapr resources, the optional connections Secret.
KINDS = ("deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,"
         "components.dapr.io,configurations.dapr.io,resiliencies.dapr.io,subscriptions.dapr.io")


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
    installed.uninstall_ordersaga()
    deadline = time.monotonic() + 300
    left = ""
    while time.monotonic() < deadline:
        left = kubectl("-n", NAMESPACE, "get", KINDS, "-l", RELEASE_LABEL, "-o", "name").strip()
        pods = kubectl("-n", NAMESPACE, "get", "pods", "-o", "name").strip()
        if not left and not pods:
            break
        time.sleep(2)
    assert not left, f"left behind by helm uninstall:\n{left}"
    assert not kubectl("-n", NAMESPACE, "get", "pods", "-o", "name").strip()
    assert "ordersaga" not in installed.helm_run("listing releases", "list", "--namespace", NAMESPACE, "-q").split()
    # The user's own Secrets stay (the README has them made with kubectl, outside the release).
    secrets = kubectl("-n", NAMESPACE, "get", "secrets", "-o", "name").split()
    assert "secret/ordersaga-connections" in secrets

    installed.install_chart(extra=("--values", str(TEST_VALUES)))
    saga.close()  # the old forward pointed at a pod that is gone
    from ordersaga import kube

    again = kube.kube_client(NAMESPACE)
    try:
        order = again.wait_for_status(timeout_order["order_id"], "FAILED", timeout=120)
        assert order["reason"] == "APPROVAL_TIMEOUT"
    finally:
        again.close()
