"""orders.v1.OrderService through Dapr's gRPC proxy, driven by a client that uses reflection."""

from __future__ import annotations

import grpc
import pytest

from tests.helpers.invariants import check_invariants
from tests.helpers.reflection_client import ReflectionClient

SERVICE = "orders.v1.OrderService"


@pytest.fixture()
def api(stack) -> ReflectionClient:
    """Calls through a sidecar that is not order-service's: Dapr proxies by `dapr-app-id`."""
    state = stack.state()
    return ReflectionClient(f"127.0.0.1:{state.app_ports('order-service')[0].app_grpc}", state.app_token,
                            call_target=f"127.0.0.1:{state.app_ports('payment-service')[0].dapr_grpc}",
                            call_token=state.api_token, app_id="order-service")


def order(order_id, customer, *items):
    return {"order_id": order_id, "customer_id": customer,
            "items": [{"sku": s, "quantity": q, "unit_price_cents": p} for s, q, p in items]}


def test_reflection_lists_the_api_and_health(api):
    services = api.services()
    assert SERVICE in services and "grpc.health.v1.Health" in services
    assert api.call("grpc.health.v1.Health/Check", {}) == {"status": "SERVING"}


def test_place_get_watch_through_the_proxy(api, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 4)
    placed = api.call(f"{SERVICE}/PlaceOrder", order(order_id, customer, (sku, 2, 700)))
    assert placed == {"order_id": order_id, "status": "PLACED"}
    updates = list(api.stream(f"{SERVICE}/WatchOrder", {"order_id": order_id}))
    assert updates[-1]["status"] == "COMPLETED" and len(updates) >= 2
    got = api.call(f"{SERVICE}/GetOrder", {"order_id": order_id})
    assert got["total_cents"] == "1400" and got["saga_instance_id"] == f"order-saga-{order_id}"
    assert got["saga_runtime_status"] in ("COMPLETED", "RUNNING")
    assert [e["step"] for e in got["timeline"]][0] == "place"
    assert got["tracking_number"].startswith("TRK-")
    listed = api.call(f"{SERVICE}/ListOrders", {"status": "COMPLETED"})
    assert order_id in [o["order_id"] for o in listed["orders"]]
    check_invariants(saga, {sku: 4}, [order_id])


def test_same_content_again_is_accepted_and_different_content_refused(api, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 4)
    first = order(order_id, customer, (sku, 1, 700))
    api.call(f"{SERVICE}/PlaceOrder", first)
    assert api.call(f"{SERVICE}/PlaceOrder", first)["order_id"] == order_id
    with pytest.raises(grpc.RpcError) as refused:
        api.call(f"{SERVICE}/PlaceOrder", order(order_id, customer, (sku, 2, 700)))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert order_id in refused.value.details()
    saga.wait_for_status(order_id, "COMPLETED")
    check_invariants(saga, {sku: 4}, [order_id])


@pytest.mark.parametrize(
    "request_, field",
    [
        ({"order_id": "bad id!", "customer_id": "c", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]},
         "order_id"),
        ({"order_id": "ok-1", "customer_id": "c", "items": []}, "items"),
        ({"order_id": "ok-2", "customer_id": "c", "items": [{"sku": "a", "quantity": 0, "unit_price_cents": 1}]},
         "items.0.quantity"),
        ({"order_id": "ok-3", "customer_id": "c", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": -1}]},
         "items.0.unit_price_cents"),
        ({"order_id": "ok-4", "customer_id": "", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]},
         "customer_id"),
    ],
)
def test_invalid_orders_are_refused_with_the_field_and_store_nothing(api, request_, field):
    with pytest.raises(grpc.RpcError) as refused:
        api.call(f"{SERVICE}/PlaceOrder", request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(field)
    if " " not in request_["order_id"] and "!" not in request_["order_id"]:
        with pytest.raises(grpc.RpcError) as missing:
            api.call(f"{SERVICE}/GetOrder", {"order_id": request_["order_id"]})
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_orders_and_statuses(api):
    for method in ("GetOrder", "CancelOrder"):
        with pytest.raises(grpc.RpcError) as missing:
            api.call(f"{SERVICE}/{method}", {"order_id": "never-placed-order"})
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        api.call(f"{SERVICE}/ListOrders", {"status": "SHIPPED"})
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cancel_after_completion_is_a_failed_precondition(api, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 1)
    api.call(f"{SERVICE}/PlaceOrder", order(order_id, customer, (sku, 1, 700)))
    saga.wait_for_status(order_id, "COMPLETED")
    with pytest.raises(grpc.RpcError) as refused:
        api.call(f"{SERVICE}/CancelOrder", {"order_id": order_id, "reason": "too late"})
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "COMPLETED" in refused.value.details()


def test_the_api_is_also_served_directly(stack, saga, ids):
    state = stack.state()
    direct = ReflectionClient(f"127.0.0.1:{state.app_ports('order-service')[0].app_grpc}", state.app_token)
    assert SERVICE in direct.services()
    with pytest.raises(grpc.RpcError) as missing:
        direct.call(f"{SERVICE}/GetOrder", {"order_id": ids("o")})
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
