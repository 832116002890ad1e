"""A client for a running stack, used by the CLI, the demo and the tests.

Every call goes through a real Dapr sidecar: actor calls and publishing over the sidecar's HTTP
API, service calls over gRPC proxying, workflow queries over the workflow API.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import grpc
from dapr.ext.workflow import DaprWorkflowClient

from inventory_service import inventory_pb2 as inv_pb
from inventory_service import inventory_pb2_grpc as inv_grpc
from order_service.topics import APPROVALS_TOPIC, PUBSUB
from ordersaga.stack.layout import StackState

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


class ActorCallError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class SagaClient:
    """Talks to the stack described by `state` (its `stack.json`)."""

    state: StackState

    def _ports(self, app_id: str):
        return self.state.ports.apps[app_id]

    # ---- orders (OrderActor through order-service's sidecar) ----------------------------

    def actor_call(self, order_id: str, method: str, payload: object = None, via: str = "order-service"):
        port = self._ports(via).dapr_http
        url = f"http://127.0.0.1:{port}/v1.0/actors/OrderActor/{order_id}/method/{method}"
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise ActorCallError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(body) if body else None

    def place(self, order_id: str, customer_id: str, items: list[tuple[str, int, int]]) -> dict:
        order = {
            "order_id": order_id,
            "customer_id": customer_id,
            "items": [{"sku": s, "quantity": q, "unit_price_cents": p} for s, q, p in items],
        }
        return self.actor_call(order_id, "place", order)

    def get(self, order_id: str) -> dict | None:
        return self.actor_call(order_id, "get")

    def wait_for_status(self, order_id: str, statuses: set[str] | str, timeout: float = 60.0) -> dict:
        wanted = {statuses} if isinstance(statuses, str) else statuses
        deadline = time.monotonic() + timeout
        order = None
        while time.monotonic() < deadline:
            try:
                order = self.get(order_id)
            except (ActorCallError, OSError):
                order = None  # a restarting order-service answers with errors for a moment
            if order and order.get("status") in wanted:
                return order
            time.sleep(0.25)
        raise AssertionError(f"order {order_id} not in {sorted(wanted)} after {timeout}s: {order}")

    def wait_for_saga(self, order_id: str, timeout: float = 60.0) -> str:
        """Wait until the saga workflow itself is terminal; its runtime status name."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            state = self.workflow_state(order_id)
            status = state.runtime_status.name if state else None
            if status in ("COMPLETED", "FAILED", "TERMINATED"):
                return status
            time.sleep(0.25)
        raise AssertionError(f"saga of {order_id} not terminal after {timeout}s: {status}")

    def workflow_state(self, order_id: str):
        client = DaprWorkflowClient(host="127.0.0.1", port=str(self._ports("order-service").dapr_grpc))
        return client.get_workflow_state(f"order-saga-{order_id}", fetch_payloads=False)

    # ---- approvals (a CloudEvent published through any sidecar) ----------------------------

    def publish(self, topic: str, data: bytes, content_type: str = "application/json", via: str = "inventory-service") -> None:
        port = self._ports(via).dapr_http
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1.0/publish/{PUBSUB}/{topic}", data=data, method="POST"
        )
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 204), response.status

    def approve(self, order_id: str, decision: str = "approve", approver: str = "e2e", via: str = "inventory-service") -> None:
        payload = {"order_id": order_id, "decision": decision, "approver": approver, "reason": ""}
        self.publish(APPROVALS_TOPIC, json.dumps(payload).encode(), via=via)

    # ---- inventory (gRPC service invocation through a sidecar) ------------------------------

    def _inventory(self, via: str = "order-service") -> inv_grpc.InventoryServiceStub:
        channel = grpc.insecure_channel(f"127.0.0.1:{self._ports(via).dapr_grpc}")
        return inv_grpc.InventoryServiceStub(channel)

    def set_stock(self, sku: str, on_hand: int) -> inv_pb.StockLevel:
        return self._inventory().SetStock(
            inv_pb.SetStockRequest(sku=sku, on_hand=on_hand), metadata=(("dapr-app-id", "inventory-service"),), timeout=30
        )

    def get_stock(self, sku: str) -> inv_pb.StockLevel:
        return self._inventory().GetStock(
            inv_pb.GetStockRequest(sku=sku), metadata=(("dapr-app-id", "inventory-service"),), timeout=30
        )
