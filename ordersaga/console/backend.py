"""The console's side of the stack: the public gRPC API (through any live sidecar, as the CLI
reaches it), approvals published through a sidecar, dead letters read from the broker and sent
back through a sidecar, bulk actions started through the API.

The stack's tokens stay here, in the server: the browser only ever sees the console's JSON.
Reads that every open page repeats (a page of the orders list, the stats, the dead letters) are
cached for a moment, so ten open tabs cost the stack what one does. The list is one page of
ListOrders (filtered by the API, whatever the index holds), never every order.
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
from ordersaga import deadletters as letters_module
from ordersaga.client import NoLiveSidecar, SagaClient
from ordersaga.console import views
from ordersaga.stack.layout import HOST, StackState

ORDERS_TTL_S = 1.5
STATS_TTL_S = 5.0
LETTERS_TTL_S = 5.0
LETTERS_SHOWN = 100  # the newest, per topic
PAGE_SIZE = 200  # orders per page of the list
STATS_ORDERS = 500  # the latest orders the charts are drawn from
QUERIES_CACHED = 32
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
    def __init__(self, run_dir: Path, page_size: int = PAGE_SIZE):
        self.run_dir = run_dir
        self.page_size = page_size
        self._client: SagaClient | None = None
        self._client_lock = threading.Lock()
        self._pages: dict[tuple, _Cached] = {}  # (status, text, page token) -> a page of the list
        self._pages_lock = threading.Lock()
        self._stats = _Cached(STATS_TTL_S, value=([], {}))
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

    def orders(self, status: str = "", text: str = "", page_token: str = "") -> tuple[dict, float, str]:
        """A page of the list (rows, next page token, how many match), when it was read, and the
        error of the last read if it failed (the page is then the last good one)."""
        key = (status, text, page_token)
        with self._pages_lock:
            cache = self._pages.get(key)
            if cache is None:
                if len(self._pages) >= QUERIES_CACHED:
                    self._pages.pop(next(iter(self._pages)))
                cache = self._pages[key] = _Cached(ORDERS_TTL_S, value={"orders": [], "next_page_token": "",
                                                                        "matching": 0})
        with cache.lock:  # one ListOrders per query at a time; callers meanwhile get its result
            if cache.stale():
                cache.read(lambda: self._list_page(status, text, page_token),
                           (grpc.RpcError, NoStack, NoLiveSidecar), _error_text)
            return cache.value, cache.read_at, cache.error

    def _list_page(self, status: str, text: str, page_token: str) -> dict:
        reply = self.client().orders().ListOrders(pb.ListOrdersRequest(
            status=status, text=text, page_size=self.page_size, page_token=page_token), timeout=60)
        return {"orders": [views.order_summary(o) for o in reply.orders], "next_page_token": reply.next_page_token,
                "matching": reply.total_matching, "counts": dict(reply.counts_by_status)}

    def stats(self) -> tuple[list[dict], dict[str, int], str]:
        """The latest orders (for the charts), every order's count by status, and the last error."""
        cache = self._stats
        with cache.lock:
            if cache.stale():
                cache.read(self._latest, (grpc.RpcError, NoStack, NoLiveSidecar), _error_text)
            rows, counts = cache.value
            return rows, counts, cache.error

    def _latest(self) -> tuple[list[dict], dict[str, int]]:
        reply = self.client().orders().ListOrders(pb.ListOrdersRequest(page_size=STATS_ORDERS), timeout=60)
        return [views.order_summary(o) for o in reply.orders], dict(reply.counts_by_status)

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

        letters = letters_module.read(feed_for(self.client().state))
        rows = {kind: [views.letter_row(letter) for letter in reversed(letters) if letter.kind == kind][:LETTERS_SHOWN]
                for kind in letters_module.KINDS}
        return rows

    def redrive(self, letter_ids: list[str], dry_run: bool) -> dict:
        """Send the named dead letters back to their topics (or, as a dry run, say which would go)."""
        from ordersaga.eventfeed import feed_for

        client = self.client()
        known = letters_module.read(feed_for(client.state))
        chosen = letters_module.select(known, ids=tuple(letter_ids))
        missing = sorted(set(letter_ids) - {letter.id for letter in chosen})
        if missing:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"no such dead letter: {', '.join(missing[:5])}")
        if dry_run:
            return {"message": f"{len(chosen)} dead letters would be sent back", "letters": [
                views.letter_row(letter) for letter in chosen]}

        def publish(topic: str, data: bytes, content_type: str, event_id: str) -> None:
            client.publish(topic, data, content_type=content_type, metadata={"cloudevent.id": event_id})

        redrive_id, report = letters_module.redrive(chosen, publish)
        with self._letters.lock:
            self._letters.at = -1e9  # the next read shows what comes back
        sent = sum(outcome == "SENT" for _, outcome, _ in report)
        return {"message": f"redrive {redrive_id}: {sent} of {len(report)} sent back; what is still refused comes "
                           "back here with its reason", "redrive_id": redrive_id,
                "letters": [{**views.letter_row(letter), "outcome": outcome, "detail": detail}
                            for letter, outcome, detail in report]}

    # ---- bulk actions ------------------------------------------------------------------------

    def bulk(self, action: str, status: str, text: str, operator: str, note: str, dry_run: bool,
             confirm_count: int) -> dict:
        reply = self.client().orders().StartBulkAction(pb.BulkActionRequest(
            action=action, filter=pb.OrderFilter(status=status, text=text), operator=operator, note=note,
            dry_run=dry_run, confirm_count=confirm_count), timeout=120)
        return views.bulk_summary(reply)

    def bulk_status(self, bulk_id: str) -> dict:
        reply = self.client().orders().GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk_id, page_size=100),
                                                     timeout=60)
        return views.bulk_summary(reply)

    def bulk_actions(self) -> list[dict]:
        reply = self.client().orders().ListBulkActions(pb.ListBulkActionsRequest(), timeout=60)
        return [views.bulk_summary(b) for b in reply.bulk_actions]

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
