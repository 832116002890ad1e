"""`ordersaga up --observe` on the real stack: one trace per order in Zipkin, Prometheus metrics
on every app and sidecar, `ordersaga top`, JSON logs with trace ids. One observed stack
(tests/conftest.py's `observe_stack`) serves them all; the first test places the orders the
others look at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import grpc
import pytest

from order_service import orders_pb2 as pb
from order_service.topics import APPROVALS_TOPIC
from ordersaga.client import SagaClient

LARGE = 150_000  # cents: above the tests' approval threshold (1000.00)


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200, (url, response.status)
        return response.read()


def _traces(zipkin_url: str, order_id: str) -> list[list[dict]]:
    query = urllib.parse.urlencode({"annotationQuery": f"order.id={order_id}", "limit": 50, "lookback": 3_600_000})
    return json.loads(_get(f"{zipkin_url}/api/v2/traces?{query}"))


def _names(trace: list[dict]) -> set[str]:
    return {(span.get("name") or "").lower() for span in trace}


# Every part of an approved order's journey, as Zipkin names the spans (lower case).
EXPECTED_SPANS = {
    "PlaceOrder (order-service)": "orders.v1.orderservice/placeorder",
    "the actor placing it": "orderactor.place",
    "the `placed` publish": "publish order-events placed",
    "the saga's orchestration (Dapr)": "orchestration||order_saga",
    "reserve activity": "activity: reserve_lines",
    "authorize activity": "activity: authorize_payment",
    "the approval gate's update": "activity: update_order",
    "the approval in (actor)": "orderactor.decide",
    "capture activity": "activity: capture_payment",
    "ship activity": "activity: create_shipment",
    "finish activity": "activity: finish_order",
    "inventory ReserveLines": "inventory.v1.inventoryservice/reservelines",
    "payment Authorize": "payment.v1.paymentservice/authorize",
    "payment Capture": "payment.v1.paymentservice/capture",
    "shipping CreateShipment": "shipping.v1.shippingservice/createshipment",
    "inventory CommitLines": "inventory.v1.inventoryservice/commitlines",
    "the actor recording steps": "orderactor.record_steps",
    "the `completed` publish": "publish order-events completed",
}


@pytest.fixture(scope="module")
def observed(observe_stack):
    """An approved order run to COMPLETED and a refused one, on the observed stack."""
    saga = SagaClient(observe_stack.state())
    suffix = f"{os.getpid()}-{int(time.time())}"
    order_id, sku, customer = f"obs-{suffix}", f"sku-obs-{suffix}", f"c-obs-{suffix}"
    saga.set_stock(sku, 5)
    saga.set_credit(customer, 10 * LARGE)
    reply = saga.orders().PlaceOrder(pb.PlaceOrderRequest(
        order_id=order_id, customer_id=customer,
        items=[pb.LineItem(sku=sku, quantity=1, unit_price_cents=LARGE)]), timeout=30)
    assert reply.status == "PLACED"
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.approve(order_id, approver="observer")
    saga.wait_for_status(order_id, "COMPLETED")
    with pytest.raises(grpc.RpcError) as refused:  # counted as a refused request
        saga.orders().PlaceOrder(pb.PlaceOrderRequest(order_id="bad id!", customer_id=customer), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Out of stock: the held payment is voided (a compensation), the order FAILED.
    saga.orders().PlaceOrder(pb.PlaceOrderRequest(
        order_id=f"{order_id}-short", customer_id=customer,
        items=[pb.LineItem(sku=f"{sku}-none", quantity=1, unit_price_cents=100)]), timeout=30)
    saga.wait_for_status(f"{order_id}-short", "FAILED")
    saga.publish(APPROVALS_TOPIC, b'{"decision": "maybe"}')  # malformed: a dead letter
    return {"saga": saga, "order_id": order_id, "status": observe_stack.status()}


def test_status_names_zipkin_the_console_and_every_metrics_endpoint(observe_stack, observed):
    seen = observed["status"]["observability"]
    assert seen["zipkin_url"].startswith("http://127.0.0.1:")
    assert _get(f"{seen['zipkin_url']}/zipkin/")  # the UI
    names = set(seen["metrics"])
    assert {"order-service", "order-service-daprd", "inventory-service", "payment-service-daprd"} <= names
    assert len(names) == 8  # four apps and four sidecars
    if seen["console_url"]:
        assert _get(f"{seen['console_url']}healthz") is not None


def test_one_trace_per_order_from_place_order_to_the_completed_event(observed, measured):
    zipkin_url = observed["status"]["observability"]["zipkin_url"]
    order_id = observed["order_id"]
    deadline = time.monotonic() + 30  # spans arrive in batches, from eight processes
    while True:
        traces = _traces(zipkin_url, order_id)
        names = set().union(*map(_names, traces)) if traces else set()
        missing = {what: name for what, name in EXPECTED_SPANS.items() if not any(name in n for n in names)}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"spans missing from the order's trace: {missing}; found: {sorted(names)}"
    assert len(traces) == 1, f"{len(traces)} traces carry order.id={order_id}: {[sorted(_names(t)) for t in traces]}"
    trace = traces[0]
    services = {span.get("localEndpoint", {}).get("serviceName") for span in trace}
    assert {"order-service", "inventory-service", "payment-service", "shipping-service"} <= services
    tagged = [span for span in trace if span.get("tags", {}).get("order.id") == order_id]
    assert len(tagged) >= 10
    measured(f"order trace: {len(trace)} spans from {len(services)} services "
             f"({len(tagged)} tagged order.id), {len(_names(trace))} distinct span names")


def test_metrics_on_every_app_and_sidecar_after_the_orders(observed, measured):
    metrics = observed["status"]["observability"]["metrics"]
    order_text = _get(metrics["order-service"]).decode()
    for line in ('ordersaga_orders_finished_total{reason="",status="COMPLETED"}',
                 'ordersaga_requests_refused_total{code="INVALID_ARGUMENT",method="PlaceOrder"}',
                 'ordersaga_step_seconds_count{outcome="ok",step="reserve"}',
                 'ordersaga_step_seconds_count{outcome="ok",step="ship"}',
                 "ordersaga_orders_placed_total",
                 'ordersaga_orders_in_flight{status="AWAITING_APPROVAL"}',
                 "ordersaga_approvals_waiting",
                 'ordersaga_orders_finished_total{reason="OUT_OF_STOCK",status="FAILED"} 1.0',
                 'ordersaga_compensations_total{outcome="ok",step="void"} 1.0'):
        assert line in order_text, line
    deadline = time.monotonic() + 15  # the malformed approval is delivered asynchronously
    while 'ordersaga_dead_letters_total{reason="MALFORMED",subscription="approvals"}' not in order_text:
        assert time.monotonic() < deadline, "no dead letter counted"
        time.sleep(0.5)
        order_text = _get(metrics["order-service"]).decode()
    assert any(line.startswith("ordersaga_orders_finished_total{") and not line.endswith(" 0.0")
               for line in order_text.splitlines())
    inventory_text = _get(metrics["inventory-service"]).decode()
    assert "ordersaga_grpc_server_seconds_count" in inventory_text and "ReserveLines" in inventory_text
    sidecar_text = _get(metrics["order-service-daprd"]).decode()
    dapr_names = sorted({line.split("{")[0].split(" ")[0] for line in sidecar_text.splitlines()
                         if line.startswith("dapr_runtime_workflow")})
    assert any("workflow_activity_execution" in name for name in dapr_names), dapr_names
    assert all(_get(url) for url in metrics.values())
    measured(f"order-service exposes {sum(1 for line in order_text.splitlines() if line.startswith('ordersaga_'))} "
             f"ordersaga_ samples; its sidecar {len(dapr_names)} dapr_runtime_workflow* series names")


def test_top_once_shows_a_frame_from_the_endpoints(observe_stack, observed):
    env = dict(os.environ, ORDERSAGA_HOME=str(observe_stack.run_dir))
    out = subprocess.run([sys.executable, "-m", "ordersaga.cli", "top", "--once"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sagas/s" in out.stdout and "COMPLETED" in out.stdout and "reserve" in out.stdout, out.stdout
    assert "INVALID_ARGUMENT" in out.stdout and "no answer from" not in out.stdout, out.stdout


def test_json_logs_carry_the_order_and_its_trace_id(observe_stack, observed):
    order_id = observed["order_id"]
    trace_ids = {span["traceId"] for trace in _traces(observed["status"]["observability"]["zipkin_url"], order_id)
                 for span in trace}
    log = observe_stack.run_dir / "logs" / "order-service.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = [e for e in entries if e.get("order_id") == order_id]
    assert mine, "no JSON log line names the order"
    steps = [e for e in mine if e.get("step") == "reserve" and e.get("outcome") == "ok"]
    assert steps and steps[0]["attempt"] == 1 and steps[0]["trace_id"] in trace_ids
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
