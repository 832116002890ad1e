"""The production profile with two replicas of every app: only order-service's sidecars (both
replicas) may call the services, and the public API answers through every replica's sidecar,
as on the embedded stack (tests/e2e/test_security.py)."""

from __future__ import annotations

from tests.helpers.access_control import (
    check_only_order_service_calls_payment,
    check_the_public_api_answers_through_every_sidecar,
    sidecars,
)


def test_only_order_service_replicas_may_call_payment_service(saga, ids):
    assert len(sidecars(saga, ["inventory-service", "shipping-service"])) == 4  # both replicas of each
    check_only_order_service_calls_payment(saga, ids("c"))


def test_the_public_api_answers_through_every_replica(saga, ids):
    order_id, sku = ids("o"), ids("sku")
    saga.set_stock(sku, 2)
    saga.place(order_id, ids("c"), [(sku, 1, 100)])
    check_the_public_api_answers_through_every_sidecar(saga, order_id)
    assert saga.wait_for_status(order_id, "COMPLETED", timeout=90)["status"] == "COMPLETED"
