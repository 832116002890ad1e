"""On one machine, the default stack still checks who is calling: sidecars want the API token,
apps want the app token (daprd adds it), and topics are scoped. Each refusal changes nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from inventory_service import inventory_pb2 as inv_pb
from inventory_service import inventory_pb2_grpc as inv_grpc
from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as orders_grpc
from ordersaga.client import MetadataInterceptor


def http(port: int, path: str, body: dict, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("dapr-api-token", token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def channel(port: int, *metadata) -> grpc.Channel:
    return grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), MetadataInterceptor(*metadata))


def test_sidecar_grpc_refuses_calls_without_the_api_token(stack, saga, ids):
    sku = ids("sku")
    saga.set_stock(sku, 3)
    port = stack.state().app_ports("order-service")[0].dapr_grpc
    for metadata in ((), (("dapr-api-token", "wrong"),)):
        stub = inv_grpc.InventoryServiceStub(channel(port, ("dapr-app-id", "inventory-service"), *metadata))
        with pytest.raises(grpc.RpcError) as refused:
            stub.SetStock(inv_pb.SetStockRequest(sku=sku, on_hand=99), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert saga.get_stock(sku).on_hand == 3


def test_sidecar_http_refuses_actor_calls_and_publishing_without_the_token(stack, saga, ids):
    order_id = ids("o")
    port = stack.state().app_ports("order-service")[0].dapr_http
    order = {"order_id": order_id, "customer_id": "c", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]}
    assert http(port, f"/v1.0/actors/OrderActor/{order_id}/method/place", order, token=None) == 401
    assert http(port, f"/v1.0/actors/OrderActor/{order_id}/method/place", order, token="wrong") == 401
    assert http(port, "/v1.0/publish/orderpubsub/order-approvals", {"order_id": order_id}, token=None) == 401
    assert saga.get(order_id) is None  # nothing was stored


def test_apps_refuse_direct_calls_without_the_app_token(stack, saga, ids):
    state = stack.state()
    order_port = state.app_ports("order-service")[0].app_grpc
    order_id = ids("o")
    request = pb.PlaceOrderRequest(order_id=order_id, customer_id="c",
                                   items=[pb.LineItem(sku="a", quantity=1, unit_price_cents=1)])
    for metadata in ((), (("dapr-api-token", state.api_token),)):  # the sidecar's token is not the app's
        with pytest.raises(grpc.RpcError) as refused:
            orders_grpc.OrderServiceStub(channel(order_port, *metadata)).PlaceOrder(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert saga.get(order_id) is None

    sku = ids("sku")
    saga.set_stock(sku, 2)
    inventory = inv_grpc.InventoryServiceStub(channel(state.app_ports("inventory-service")[0].app_grpc))
    with pytest.raises(grpc.RpcError) as refused:
        inventory.SetStock(inv_pb.SetStockRequest(sku=sku, on_hand=50), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert saga.get_stock(sku).on_hand == 2

    with_token = orders_grpc.OrderServiceStub(channel(order_port, ("dapr-api-token", state.app_token)))
    with pytest.raises(grpc.RpcError) as missing:
        with_token.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND  # through the guard, to the API


def test_only_order_service_publishes_lifecycle_events(stack):
    state = stack.state()
    event = {"order_id": "forged", "type": "completed", "status": "COMPLETED"}
    inventory_http = state.app_ports("inventory-service")[0].dapr_http
    assert http(inventory_http, "/v1.0/publish/orderpubsub/order-events", event, token=state.api_token) == 403
    assert http(inventory_http, "/v1.0/publish/orderpubsub/order-approvals-deadletter", event,
                token=state.api_token) == 403


def test_approvals_and_requests_are_subscribed_by_order_service_alone(stack):
    state = stack.state()
    for app_id in ("order-service", "inventory-service"):
        port = state.app_ports(app_id)[0].dapr_http
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1.0/metadata")
        request.add_header("dapr-api-token", state.api_token)
        with urllib.request.urlopen(request, timeout=10) as response:
            topics = {s["topic"] for s in json.load(response).get("subscriptions", [])}
        assert topics == ({"order-approvals", "order-requests"} if app_id == "order-service" else set())


def test_apps_cannot_read_their_sidecars_environment_through_the_secrets_api(stack):
    """The components' settings come from the env secret store, which the Configuration closes
    to the secrets API (components still resolve them: the stack runs)."""
    state = stack.state()
    port = state.app_ports("order-service")[0].dapr_http
    for key in ("ORDERSAGA_NATS_URL", "DAPR_API_TOKEN"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1.0/secrets/envsecrets/{key}")
        request.add_header("dapr-api-token", state.api_token)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403, refused.value.read()
