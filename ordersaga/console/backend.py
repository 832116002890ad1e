"""The console's side of the stack: the public gRPC API (through any live sidecar, as the CLI
reaches it), approvals published through a sidecar, dead letters read from the broker.

The stack's tokens stay here, in the server: the browser only ever sees the console's JSON.
Reads that every open page repeats (the orders list, the dead letters) are cached for a moment,
so ten open tabs cost the stack what one does.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from order_service import orders_pb2 as pb
from order_service.topics import APPROVALS_DEAD_LETTER_TOPIC, REQUESTS_DEAD_LETTER_TOPIC
from ordersaga.client import NoLiveSidecar, SagaClient
from ordersaga.console import views
from ordersaga.stack.layout import HOST, StackState

ORDERS_TTL_S = 1.5
LETTERS_TTL_S = 5.0
LETTERS_SHOWN = 100  # the newest, per topic
# The span attribute (a Zipkin tag) that the apps put the order id in (apphost's observability).
ORDER_TAG = "order.id"


class NoStack(RuntimeError):
    """There is no stack (no stack.json) in the run directory."""


class Refused(Exception):
    """An action the API (or, for approvals, the order's state) refuses: a gRPC code and why."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass
class _Cached:
    """A read shared by every open page. It is read again once `ttl` has passed since the last
    read ended, and at least three times its duration: a stack with many orders (ListOrders
    reads each one) is never kept busy by the console more than a quarter of the time."""

    ttl: float
    value: object = None
    at: float = -1e9
    took: float = 0.0
    read_at: float = 0.0  # wall clock, for the page
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stale(self) -> bool:
        return time.monotonic() - self.at >= max(self.ttl, 3 * self.took)

    def read(self, fetch, failures: tuple[type[Exception], ...], describe=str) -> None:
        start = time.monotonic()
        try:
            self.value, self.error = fetch(), ""
        except failures as error:
            self.error = describe(error)  # the last good value stays
        self.at, self.read_at = time.monotonic(), time.time()
        self.took = self.at - start


class Backend:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._client: SagaClient | None = None
        self._client_lock = threading.Lock()
        self._orders = _Cached(ORDERS_TTL_S, value=[])
        self._letters = _Cached(LETTERS_TTL_S, value={"requests": [], "approvals": []})
        self._traces: dict[tuple[str, str], tuple[str, float | None]] = {}  # -> link, valid until (None: always)

    # ---- the stack --------------------------------------------------------------------------

    def client(self) -> SagaClient:
        """A client for the stack as stack.json describes it now (a restarted stack has new
        ports and tokens: a new client)."""
        state = StackState.load(self.run_dir)
        if state is None:
            raise NoStack(f"no stack in {self.run_dir}: start one with `ordersaga up`")
        with self._client_lock:
            if self._client is None or self._client.state.api_token != state.api_token:
                self._client = SagaClient(state)
            return self._client

    def stack_json(self) -> dict:
        try:
            return json.loads((self.run_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def zipkin_url(self) -> str:
        """The trace backend of an `--observe` stack, else "". Read defensively: stacks started
        without --observe (or before it existed) have no such fields."""
        data = self.stack_json()
        observability = data.get("observability") or {}
        if observability.get("zipkin_url"):
            return str(observability["zipkin_url"]).rstrip("/")
        port = (data.get("ports") or {}).get("zipkin")
        return f"http://{HOST}:{port}" if data.get("observe") and port else ""

    # ---- reads ------------------------------------------------------------------------------

    def orders(self) -> tuple[list[dict], float, str]:
        """Every order as a list row, when it was read, and the error of the last read if it
        failed (the rows are then the last good ones)."""
        cache = self._orders
        with cache.lock:  # one ListOrders at a time; callers meanwhile get its result
            if cache.stale():
                cache.read(self._list_orders, (grpc.RpcError, NoStack, NoLiveSidecar), _error_text)
            return cache.value, cache.read_at, cache.error

    def _list_orders(self) -> list[dict]:
        reply = self.client().orders().ListOrders(pb.ListOrdersRequest(), timeout=60)
        return sorted((views.order_summary(o) for o in reply.orders), key=lambda s: s["placed_at"], reverse=True)

    def order(self, order_id: str) -> pb.Order:
        return self.client().orders().GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)

    def dead_letters(self) -> dict:
        cache = self._letters
        with cache.lock:
            if cache.stale():
                # NATS and Kafka clients raise many kinds of errors: any of them is shown.
                cache.read(self._read_letters, (Exception,), lambda e: f"the broker could not be read: {e}")
            return {**cache.value, "error": cache.error}

    def _read_letters(self) -> dict:
        from ordersaga.eventfeed import feed_for  # the broker clients: only when letters are asked for

        client = self.client()
        feed = feed_for(client.state)
        requests = feed.read_all(REQUESTS_DEAD_LETTER_TOPIC, lambda body: True, 0, timeout=10)[-LETTERS_SHOWN:]
        approvals = feed.read_all(APPROVALS_DEAD_LETTER_TOPIC, lambda body: True, 0, timeout=10)[-LETTERS_SHOWN:]
        known = {row["order_id"]: row for row in self.orders()[0]}
        return {
            "requests": [views.request_dead_letter(body) for body in reversed(requests)],
            "approvals": [views.approval_dead_letter(body, known) for body in reversed(approvals)],
        }

    def trace_url(self, order_id: str) -> str:
        """A link to the order's trace: the trace itself when Zipkin finds one tagged with the
        order id, else Zipkin's search for that tag; "" without a trace backend. A found trace
        is remembered; a search link is asked again after a while (the trace may come later),
        so the order page's polling does not query Zipkin every time."""
        base = self.zipkin_url()
        if not base:
            return ""
        known = self._traces.get((base, order_id))
        if known and (known[1] is None or time.monotonic() < known[1]):
            return known[0]
        query = f"{ORDER_TAG}={order_id}"
        link, until = f"{base}/zipkin/?" + urllib.parse.urlencode({"annotationQuery": query}), time.monotonic() + 10
        try:
            url = (f"{base}/api/v2/traces?" + urllib.parse.urlencode(
                {"annotationQuery": query, "limit": 1, "lookback": 7 * 86400 * 1000}))
            with urllib.request.urlopen(url, timeout=2) as response:
                traces = json.loads(response.read())
            if traces and traces[0]:
                link, until = f"{base}/zipkin/traces/{urllib.parse.quote(traces[0][0]['traceId'])}", None
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass  # Zipkin down or slow: the search link still helps
        self._traces[(base, order_id)] = (link, until)
        return link

    # ---- actions ----------------------------------------------------------------------------

    def decide(self, order_id: str, decision: str, approver: str, reason: str) -> dict:
        """Publish a decision on `order-approvals`, as any approver does. The topic answers
        nothing, so the order is asked first: a decision it cannot take would only land in the
        dead letters. Then wait briefly to tell whether the order recorded it."""
        order = self.order(order_id)  # NOT_FOUND as the API says it
        if order.status not in views.DECIDABLE:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION,
                          f"order {order_id} is {order.status}, not waiting for approval "
                          f"(checked by the console before publishing)")
        self.client().approve(order_id, decision=decision, approver=approver, reason=reason)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            order = self.order(order_id)
            if any(e.step == "approval" and e.outcome == "RECEIVED" for e in order.timeline):
                return {"message": f"{decision} published on order-approvals; the order recorded it",
                        "order": views.order_detail(order)}
            time.sleep(0.25)
        return {"message": f"{decision} published on order-approvals; the order has not recorded it yet "
                           f"(a refused decision goes to the dead letters)", "order": views.order_detail(order)}

    def cancel(self, order_id: str, reason: str) -> dict:
        order = self.client().orders().CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason=reason), timeout=30)
        return {"message": f"cancel accepted; the order is {order.status} and will end CANCELLED",
                "order": views.order_detail(order)}

    def retry(self, order_id: str, operator: str) -> dict:
        order = self.client().orders().RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator=operator),
                                                  timeout=30)
        return {"message": f"retry started ({order.saga_instance_id})", "order": views.order_detail(order)}

    def close(self, order_id: str, operator: str, note: str) -> dict:
        order = self.client().orders().CloseOrder(
            pb.CloseOrderRequest(order_id=order_id, operator=operator, note=note), timeout=30)
        return {"message": f"closed by hand: {order.status}", "order": views.order_detail(order)}


def _error_text(error: Exception) -> str:
    if isinstance(error, grpc.RpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
