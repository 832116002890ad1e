"""The console's HTTP side without a stack: a stand-in backend behind the real app and server.
The API's refusals keep their code and message, nothing answers with a traceback, actions need
a JSON body, every answer carries the security headers; the trace link comes from stack.json."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import grpc
import pytest
import uvicorn

from order_service import orders_pb2 as pb
from ordersaga.console import views
from ordersaga.console.app import create_app
from ordersaga.console.backend import Backend, Refused, _Cached
from ordersaga.stack.layout import HOST, free_port


class StandIn:
    """What the app asks of a Backend, with canned answers."""

    def __init__(self):
        self.calls = []

    ORDERS = [("ann", "COMPLETED"), ("bob", "FAILED"), ("ann", "SHIPPING")]

    def orders(self, status="", text="", page_token=""):
        """The API filters: here, as ListOrders would (the console passes the filters on)."""
        self.calls.append(("orders", status, text, page_token))
        rows = [views.order_summary(pb.Order(order_id=f"o-{n}", customer_id=c, status=s))
                for n, (c, s) in enumerate(self.ORDERS)]
        matching = [row for row in rows if views.matches(row, status, text)]
        return {"orders": matching, "next_page_token": "", "matching": len(matching),
                "counts": {"COMPLETED": 1, "FAILED": 1, "SHIPPING": 1}}, time.time(), ""

    def stats(self):
        rows = self.orders()[0]["orders"]
        return rows, {"COMPLETED": 1, "FAILED": 1, "SHIPPING": 1}, ""

    def bulk(self, action, status, text, operator, note, dry_run, confirm_count):
        self.calls.append(("bulk", action, status, text, dry_run, confirm_count))
        if not dry_run and confirm_count < 2:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, "2 orders are selected, more than the 1 confirmed")
        return {"bulk_id": "" if dry_run else "bulk-1", "state": "DRY_RUN" if dry_run else "RUNNING", "selected": 2}

    def order(self, order_id):
        if order_id == "o-boom":
            raise RuntimeError("something broke")
        raise Refused(grpc.StatusCode.NOT_FOUND, f"order {order_id} does not exist")

    def trace_url(self, order_id):
        return ""

    def dead_letters(self):
        return {"requests": [], "approvals": [], "error": ""}

    def retry(self, order_id, operator):
        self.calls.append(("retry", order_id, operator))
        raise Refused(grpc.StatusCode.FAILED_PRECONDITION, f"order {order_id} is COMPLETED, not NEEDS_ATTENTION")

    def cancel(self, order_id, reason):
        self.calls.append(("cancel", order_id, reason))
        return {"message": "cancel accepted", "order": None}


@pytest.fixture(scope="module")
def served():
    stand_in = StandIn()
    port = free_port(set())
    server = uvicorn.Server(uvicorn.Config(create_app(stand_in), host=HOST, port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://{HOST}:{port}", stand_in
    server.should_exit = True
    thread.join(10)


def call(url: str, body: bytes | None = None, content_type: str = "application/json"):
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_health_pages_and_security_headers(served):
    base, _ = served
    status, headers, body = call(f"{base}/healthz")
    assert (status, body) == (200, b"ok")
    assert "script-src 'self'" in headers["content-security-policy"]
    for path in ("/", "/orders/o-1", "/dead-letters", "/static/app.js", "/static/style.css"):
        status, headers, _ = call(base + path)
        assert status == 200, path
        assert headers["x-content-type-options"] == "nosniff"


def test_the_list_passes_its_filters_to_the_api(served):
    base, stand_in = served
    status, _, body = call(f"{base}/api/orders?status=completed&q=")
    assert [o["order_id"] for o in json.loads(body)["orders"]] == ["o-0"]
    assert ("orders", "COMPLETED", "", "") in stand_in.calls
    data = json.loads(call(f"{base}/api/orders?q=ANN")[2])
    assert sorted(o["order_id"] for o in data["orders"]) == ["o-0", "o-2"] and data["total"] == 3
    assert json.loads(call(f"{base}/api/stats")[2])["in_flight"] == 1


def test_refusals_keep_the_apis_code_and_message_and_nothing_answers_with_a_traceback(served):
    base, stand_in = served
    status, _, body = call(f"{base}/api/orders/o-9/retry", json.dumps({"by": "<b>me</b>"}).encode())
    assert status == 409
    assert json.loads(body) == {"error": {"code": "FAILED_PRECONDITION",
                                          "details": "order o-9 is COMPLETED, not NEEDS_ATTENTION"}}
    assert stand_in.calls[-1] == ("retry", "o-9", "<b>me</b>")
    assert call(f"{base}/api/orders/o-9")[0] == 404
    status, _, body = call(f"{base}/api/orders/o-boom")
    assert status == 500 and b"Traceback" not in body
    assert json.loads(body)["error"]["details"] == "the console failed: RuntimeError: something broke"


def test_a_bulk_action_is_previewed_then_run_with_the_number_typed(served):
    base, stand_in = served
    status, _, body = call(f"{base}/api/bulk", json.dumps({"action": "approve", "status": "awaiting_approval",
                                                           "dry_run": True}).encode())
    assert status == 200 and json.loads(body)["selected"] == 2
    assert call(f"{base}/api/bulk", json.dumps({"action": "approve"}).encode())[0] == 400  # no number typed
    status, _, body = call(f"{base}/api/bulk", json.dumps({"action": "approve", "confirm_count": 1}).encode())
    assert status == 409 and "more than the 1 confirmed" in json.loads(body)["error"]["details"]
    status, _, body = call(f"{base}/api/bulk", json.dumps({"action": "approve", "confirm_count": 2}).encode())
    assert status == 200 and json.loads(body)["bulk_id"] == "bulk-1"
    assert ("bulk", "approve", "AWAITING_APPROVAL", "", True, 0) in stand_in.calls


def test_actions_take_a_json_object_and_only_known_actions(served):
    base, stand_in = served
    assert call(f"{base}/api/orders/o-1/cancel", b"reason=x", "application/x-www-form-urlencoded")[0] == 415
    assert call(f"{base}/api/orders/o-1/cancel", b"[1]")[0] == 400
    assert call(f"{base}/api/orders/o-1/cancel", b"{not json")[0] == 400
    assert call(f"{base}/api/orders/o-1/explode", b"{}")[0] == 404
    status, _, body = call(f"{base}/api/orders/o-1/cancel", json.dumps({"reason": "x" * 900}).encode())
    assert status == 200 and stand_in.calls[-1] == ("cancel", "o-1", "x" * 500)


class FakeZipkin(BaseHTTPRequestHandler):
    def do_GET(self):
        found = "order.id%3Do-traced" in self.path or "order.id=o-traced" in self.path
        body = json.dumps([[{"traceId": "abc123", "name": "x"}]] if found else []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_trace_link_comes_from_stack_json_when_there_is_a_trace_backend(tmp_path):
    backend = Backend(tmp_path)
    assert backend.trace_url("o-1") == ""  # no stack.json
    (tmp_path / "stack.json").write_text(json.dumps({"ports": {}}))
    assert backend.trace_url("o-1") == ""  # a stack without --observe
    zipkin = HTTPServer((HOST, 0), FakeZipkin)
    threading.Thread(target=zipkin.serve_forever, daemon=True).start()
    try:
        port = zipkin.server_address[1]
        (tmp_path / "stack.json").write_text(json.dumps({"observe": True, "ports": {"zipkin": port}}))
        assert backend.trace_url("o-traced") == f"http://{HOST}:{port}/zipkin/traces/abc123"
        assert backend.trace_url("o-other") == f"http://{HOST}:{port}/zipkin/?annotationQuery=order.id%3Do-other"
        (tmp_path / "stack.json").write_text(json.dumps({"observability": {"zipkin_url": f"http://{HOST}:{port}/"}}))
        assert backend.trace_url("o-traced").endswith("/zipkin/traces/abc123")
    finally:
        zipkin.shutdown()
        zipkin.server_close()


def test_a_shared_read_waits_three_times_as_long_as_it_took_and_keeps_the_last_good_value():
    cache = _Cached(ttl=0.0, value=["old"])
    assert cache.stale()

    def slow():
        time.sleep(0.1)
        return ["new"]
    cache.read(slow, (RuntimeError,))
    assert cache.value == ["new"] and not cache.stale()  # for about 0.3 s
    time.sleep(0.35)
    assert cache.stale()

    def broken():
        raise RuntimeError("stack down")
    cache.read(broken, (RuntimeError,), lambda e: f"said: {e}")
    assert (cache.value, cache.error) == (["new"], "said: stack down")
