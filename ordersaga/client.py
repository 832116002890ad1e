"""A client for a running stack, used by the CLI, the demo and the tests.

Every call goes through a real Dapr sidecar: actor calls as order-service makes them (its sidecar
module, over gRPC, with the actor's refusals as structured errors), publishing over the sidecar's
HTTP API, service calls over gRPC proxying, workflow queries over the workflow API. With replicas,
any live sidecar will do: each call takes the first replica of the app it prefers whose sidecar
runs (order-service's for actors and workflows), else any live sidecar of the stack. Calls to
inventory-, payment- and shipping-service go through an order-service sidecar only: their
access control admits no other caller (components/config-services.yaml).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import grpc
from dapr.conf import settings
from dapr.ext.workflow import DaprWorkflowClient

from apphost import faults_pb2, faults_pb2_grpc
from apphost.faults import FAULT_INJECTION_ENV
from apphost.faults import SERVICE_NAME as FAULTS_SERVICE
from inventory_service import inventory_pb2 as inv_pb
from inventory_service import inventory_pb2_grpc as inv_grpc
from order_service import orders_pb2_grpc as orders_grpc
from order_service.actor import ACTOR_TYPE
from order_service.sidecar import ActorCallError, Actors, Sidecar
from order_service.topics import APPROVALS_TOPIC, PUBSUB
from ordersaga.stack import processes
from ordersaga.stack.layout import APPS, AppPorts, StackState, replica_name
from payment_service import payment_pb2 as pay_pb
from payment_service import payment_pb2_grpc as pay_grpc
from shipping_service import shipping_pb2 as ship_pb
from shipping_service import shipping_pb2_grpc as ship_grpc

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


class NoLiveSidecar(RuntimeError):
    """Every sidecar of the stack is down (or every one a call may go through)."""


class FaultInjectionOff(RuntimeError):
    """The service has no Faults API: fault injection is off where it runs."""


@dataclass
class SagaClient:
    """Talks to the stack described by `state` (its `stack.json`)."""

    state: StackState
    _channels: dict = field(default_factory=dict)

    def _ports(self, app_id: str, only: bool = False) -> AppPorts:
        """A live sidecar: a replica of `app_id` whose daprd runs, else (unless `only`) any live one."""
        if not self._sidecar_runs(app_id, 0):
            # Perhaps restarted since this client read stack.json (a new pid): read it again.
            self.state = StackState.load(self.state.run_dir) or self.state
        for candidate in [app_id] if only else [app_id, *(a for a in APPS if a != app_id)]:
            for index, ports in enumerate(self.state.app_ports(candidate)):
                if self._sidecar_runs(candidate, index):
                    return ports
        if only:
            raise NoLiveSidecar(f"no sidecar of {app_id} in the stack in {self.state.run_dir} is running, and the "
                                f"services accept calls from {app_id} only: `ordersaga up` starts it")
        raise NoLiveSidecar(f"no sidecar of the stack in {self.state.run_dir} is running: `ordersaga up` starts them")

    def close(self) -> None:
        """Closes every channel this client opened (sidecars' and services')."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _sidecar_runs(self, app_id: str, index: int) -> bool:
        record = self.state.processes.get(f"{replica_name(app_id, index)}-daprd")
        return record is None or processes.is_running(record)  # no record: not ours to check; trust it

    # ---- orders (OrderActor through order-service's sidecar) ----------------------------

    def actor_call(self, order_id: str, method: str, payload: object = None, via: str = "order-service"):
        port = self._ports(via).dapr_grpc
        if ("actors", port) not in self._channels:
            self._channels[("actors", port)] = Actors(Sidecar("127.0.0.1", port, self.state.api_token), ACTOR_TYPE)
        return self._channels[("actors", port)].call(order_id, method, payload)

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

    def wait_for_saga(self, order_id: str, timeout: float = 60.0, instance_id: str = "") -> str:
        """Wait until the saga workflow itself is terminal; its runtime status name.
        `instance_id`: another workflow of the order than its saga (a retry's)."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            state = self.workflow_state(order_id, instance_id=instance_id)
            status = state.runtime_status.name if state else None
            if status in ("COMPLETED", "FAILED", "TERMINATED"):
                return status
            time.sleep(0.25)
        raise AssertionError(f"saga of {order_id} not terminal after {timeout}s: {status}")

    def workflow_state(self, order_id: str, payloads: bool = False, instance_id: str = ""):
        settings.DAPR_API_TOKEN = self.state.api_token  # the SDK's workflow client reads it here
        client = DaprWorkflowClient(host="127.0.0.1", port=str(self._ports("order-service").dapr_grpc))
        return client.get_workflow_state(instance_id or f"order-saga-{order_id}", fetch_payloads=payloads)

    # ---- approvals (a CloudEvent published through any sidecar) ----------------------------

    def publish(self, topic: str, data: bytes, content_type: str = "application/json",
                via: str = "inventory-service", metadata: dict[str, str] | None = None) -> None:
        """`metadata`: Dapr's publish metadata, e.g. {"cloudevent.id": ...} or {"rawPayload": "true"}."""
        port = self._ports(via).dapr_http
        query = urllib.parse.urlencode({f"metadata.{key}": value for key, value in (metadata or {}).items()})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1.0/publish/{PUBSUB}/{topic}{'?' + query if query else ''}", data=data,
            method="POST"
        )
        request.add_header("Content-Type", content_type)
        request.add_header("dapr-api-token", self.state.api_token)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 204), response.status

    def approve(self, order_id: str, decision: str = "approve", approver: str = "e2e",
                via: str = "inventory-service", reason: str = "") -> None:
        payload = {"order_id": order_id, "decision": decision, "approver": approver, "reason": reason}
        self.publish(APPROVALS_TOPIC, json.dumps(payload).encode(), via=via)

    def cancel(self, order_id: str, reason: str = "") -> dict:
        return self.actor_call(order_id, "cancel", {"reason": reason})

    # ---- the services (gRPC service invocation through a sidecar) ------------------------------

    def _channel(self, via: str = "order-service", only: bool = False) -> grpc.Channel:
        """A channel to a live sidecar that carries the stack's API token; with `only`, a
        sidecar of `via` itself."""
        port = self._ports(via, only).dapr_grpc
        if port not in self._channels:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            token = MetadataInterceptor(("dapr-api-token", self.state.api_token))
            self._channels[port] = grpc.intercept_channel(channel, token)
        return self._channels[port]

    def _service_channel(self) -> grpc.Channel:
        """To the services: only order-service may call them (Dapr access control)."""
        return self._channel("order-service", only=True)

    @staticmethod
    def _to(app_id: str) -> dict:
        return {"metadata": (("dapr-app-id", app_id),), "timeout": 30}

    def orders(self) -> orders_grpc.OrderServiceStub:
        """The public API through order-service's sidecar (gRPC proxying)."""
        channel = grpc.intercept_channel(self._channel(), MetadataInterceptor(("dapr-app-id", "order-service")))
        return orders_grpc.OrderServiceStub(channel)

    def set_stock(self, sku: str, on_hand: int) -> inv_pb.StockLevel:
        stub = inv_grpc.InventoryServiceStub(self._service_channel())
        return stub.SetStock(inv_pb.SetStockRequest(sku=sku, on_hand=on_hand), **self._to("inventory-service"))

    def get_stock(self, sku: str) -> inv_pb.StockLevel:
        stub = inv_grpc.InventoryServiceStub(self._service_channel())
        return stub.GetStock(inv_pb.GetStockRequest(sku=sku), **self._to("inventory-service"))

    def set_credit(self, customer_id: str, limit_cents: int) -> pay_pb.Credit:
        stub = pay_grpc.PaymentServiceStub(self._service_channel())
        return stub.SetCredit(pay_pb.SetCreditRequest(customer_id=customer_id, limit_cents=limit_cents),
                              **self._to("payment-service"))

    def get_credit(self, customer_id: str) -> pay_pb.Credit:
        stub = pay_grpc.PaymentServiceStub(self._service_channel())
        return stub.GetCredit(pay_pb.GetCreditRequest(customer_id=customer_id), **self._to("payment-service"))

    def get_shipment(self, order_id: str) -> ship_pb.Shipment:
        stub = ship_grpc.ShippingServiceStub(self._service_channel())
        return stub.GetShipment(ship_pb.ShipmentRef(idempotency_key=f"{order_id}:ship"), **self._to("shipping-service"))

    def set_faults(self, app_id: str, error_rate: float = 0.0, delay_seconds: float = 0.0,
                   methods: tuple[str, ...] = (), delay_after_seconds: float = 0.0) -> faults_pb2.FaultSettings:
        """Faults live in each process: set them on every live replica of the app, each called on
        its own app port (with the app token), since a call through Dapr reaches one replica."""
        settings = faults_pb2.FaultSettings(error_rate=error_rate, delay_seconds=delay_seconds, methods=list(methods),
                                            delay_after_seconds=delay_after_seconds)
        self.state = StackState.load(self.state.run_dir) or self.state  # the pids as they are now
        replies = []
        for index, ports in enumerate(self.state.app_ports(app_id)):
            record = self.state.processes.get(replica_name(app_id, index))
            if record is not None and not processes.is_running(record):
                continue
            with grpc.insecure_channel(f"127.0.0.1:{ports.app_grpc}") as channel:
                stub = faults_pb2_grpc.FaultsStub(channel)
                try:
                    replies.append(stub.Set(settings, metadata=(("dapr-api-token", self.state.app_token),),
                                            timeout=30))
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    raise FaultInjectionOff(
                        f"fault injection is off in this deployment: {app_id} serves no {FAULTS_SERVICE} API "
                        f"(a service has it only when started with {FAULT_INJECTION_ENV}=on, which `ordersaga up` "
                        f"sets unless the environment says off)") from None
        if not replies:
            raise NoLiveSidecar(f"no replica of {app_id} is running")
        return replies[0]

    def clear_faults(self, app_id: str) -> faults_pb2.FaultSettings:
        return self.set_faults(app_id)


class MetadataInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                          grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds fixed metadata to every call: the sidecar's API token, or `dapr-app-id` so the
    sidecar proxies the call to that app."""

    def __init__(self, *pairs: tuple[str, str]):
        self._metadata = tuple(pairs)

    def _details(self, details):
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)
