"""On one machine, the default stack still checks who is calling: sidecars want the API token,
apps want the app token (daprd adds it), topics are scoped, only order-service may call the
services (Dapr access control over mTLS identities, which Sentry signs only for their tokens),
and fault injection exists only where the stack turns it on. Each refusal changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apphost import faults_pb2, faults_pb2_grpc
from inventory_service import inventory_pb2 as inv_pb
from inventory_service import inventory_pb2_grpc as inv_grpc
from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as orders_grpc
from ordersaga.client import MetadataInterceptor, SagaClient
from ordersaga.stack import sentry
from ordersaga.stack.layout import free_port
from ordersaga.stack.runtime import ensure_dapr
from ordersaga.stack.stack import Stack
from shipping_service import shipping_pb2 as ship_pb
from shipping_service import shipping_pb2_grpc as ship_grpc
from tests.conftest import TEST_SETTINGS
from tests.helpers.access_control import (
    SERVICES,
    check_only_order_service_calls_payment,
    check_the_public_api_answers_through_every_sidecar,
    refused,
    sidecars,
    through,
)
from tests.helpers.reflection_client import ReflectionClient


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


# ---- only order-service calls the services (issue 18, hole 10) -------------------------------

def test_only_order_service_may_call_payment_service(saga, ids):
    check_only_order_service_calls_payment(saga, ids("c"))


def test_inventory_and_shipping_refuse_other_callers_too(saga, ids):
    sku, order_id = ids("sku"), ids("o")
    saga.set_stock(sku, 3)
    for name, port in sidecars(saga, ["payment-service", "shipping-service"]).items():
        inventory = inv_grpc.InventoryServiceStub(through(saga, port, "inventory-service"))
        assert refused(lambda: inventory.SetStock(inv_pb.SetStockRequest(sku=sku, on_hand=99), timeout=30)) == \
            grpc.StatusCode.PERMISSION_DENIED, name
    for name, port in sidecars(saga, ["inventory-service", "payment-service"]).items():
        shipping = ship_grpc.ShippingServiceStub(through(saga, port, "shipping-service"))
        assert refused(lambda: shipping.CreateShipment(ship_pb.CreateShipmentRequest(
            order_id=order_id, idempotency_key=f"{order_id}:ship"), timeout=30)) == \
            grpc.StatusCode.PERMISSION_DENIED, name
    assert saga.get_stock(sku).on_hand == 3
    assert saga.get_shipment(order_id).tracking_number == ""  # nothing was shipped


def test_the_public_api_answers_through_every_sidecar(saga, ids):
    order_id, sku = ids("o"), ids("sku")
    saga.set_stock(sku, 2)
    saga.place(order_id, ids("c"), [(sku, 1, 100)])
    check_the_public_api_answers_through_every_sidecar(saga, order_id)
    assert saga.wait_for_status(order_id, "COMPLETED", timeout=60)["status"] == "COMPLETED"


def test_sidecars_talk_to_each_other_over_mtls_only(stack):
    """daprd's internal port (sidecar to sidecar) refuses a plaintext client: before mTLS, any
    local process could hand it a call for its app, past the API token."""
    state = stack.state()
    for app_id in ("payment-service", "order-service"):
        port = state.app_ports(app_id)[0].dapr_internal_grpc
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
            call = plain.unary_unary("/dapr.proto.internals.v1.ServiceInvocation/CallLocal")
            assert refused(lambda: call(b"", timeout=10)) == grpc.StatusCode.UNAVAILABLE, app_id


def test_status_lists_sentry(stack):
    status = stack.status()
    assert status["mtls"] is True
    assert status["infrastructure"]["sentry"]["running"] and status["infrastructure"]["sentry"]["port"]


def _claim_order_service(stack, tmp_path, token: str | None) -> subprocess.CompletedProcess:
    """A daprd of our own that says it is order-service, with `token` for Sentry (or none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAPR_")}
    env.update(NAMESPACE="default", DAPR_TRUST_ANCHORS=sentry.credentials(stack.run_dir).trust_anchors())
    if token is not None:
        (tmp_path / "token.jwt").write_text(token)
        env["DAPR_SENTRY_TOKEN_FILE"] = str(tmp_path / "token.jwt")
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(4)]
    argv = [str(ensure_dapr().daprd), "--app-id=order-service", "--enable-mtls",
            f"--sentry-address={sentry.sentry_address(stack.state())}", "--dapr-listen-addresses=127.0.0.1",
            f"--dapr-grpc-port={ports[0]}", f"--dapr-http-port={ports[1]}", f"--dapr-internal-grpc-port={ports[2]}",
            f"--metrics-port={ports[3]}", "--enable-metrics=false", "--log-level=info"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_sentry_signs_order_services_identity_only_for_its_token(stack, tmp_path):
    """The services trust whoever holds a certificate naming order-service; Sentry gives one
    only for the token in the run directory (its JWKS validator), not to any local process."""
    forged_key = ec.generate_private_key(ec.SECP256R1())
    forged = sentry._jwt(forged_key, "forged", {"sub": sentry.spiffe_id("order-service"), "aud": sentry.SENTRY_ID})
    for token, why in ((None, "a validator name must be specified"), (forged, "token validation failed")):
        claimed = _claim_order_service(stack, tmp_path, token)
        assert claimed.returncode != 0 and why in claimed.stdout + claimed.stderr, claimed.stdout[-2000:]


# ---- fault injection only where the stack turns it on ----------------------------------------

@pytest.fixture(scope="module")
def stack_without_faults(tmp_path_factory):
    """A stack started as a deployment runs by default: ORDERSAGA_FAULT_INJECTION=off."""
    stack = Stack(tmp_path_factory.mktemp("nofaults") / ".ordersaga", tie_to_parent=True,
                  log=lambda message: print(message, flush=True),
                  extra_env=dict(TEST_SETTINGS, ORDERSAGA_FAULT_INJECTION="off"))
    try:
        stack.up(timeout=120, profile="embedded")
        yield stack
    finally:
        stack.down()


@pytest.mark.timeout(300)
def test_without_fault_injection_no_service_has_a_faults_api(stack_without_faults, ids):
    state = stack_without_faults.state()
    saga = SagaClient(state)
    for app_id in SERVICES:
        services = ReflectionClient(f"127.0.0.1:{state.app_ports(app_id)[0].app_grpc}", state.app_token).services()
        assert "ordersaga.faults.v1.Faults" not in services and len(services) >= 3, (app_id, services)
    order_sidecar = state.app_ports("order-service")[0].dapr_grpc
    faults = faults_pb2_grpc.FaultsStub(through(saga, order_sidecar, "payment-service"))
    assert refused(lambda: faults.Set(faults_pb2.FaultSettings(error_rate=1.0), timeout=30)) == \
        grpc.StatusCode.UNIMPLEMENTED

    cli = subprocess.run([sys.executable, "-m", "ordersaga.cli", "faults", "payment", "--error-rate", "1"],
                         env=dict(os.environ, ORDERSAGA_HOME=str(state.run_dir)), capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 1 and not cli.stdout
    assert "fault injection is off in this deployment: payment-service" in cli.stderr, cli.stderr

    order_id, sku = ids("o"), ids("sku")  # and the stack works as ever
    saga.set_stock(sku, 1)
    saga.place(order_id, ids("c"), [(sku, 1, 100)])
    assert saga.wait_for_status(order_id, {"COMPLETED", "FAILED"}, timeout=90)["status"] == "COMPLETED"
