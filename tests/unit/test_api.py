"""orders.v1.OrderService on a real gRPC server, built as order-service's composition root builds
it, over a fake actor client (no sidecar): open watches never take the threads that new orders,
reads and approvals need (issue 18, hole 7), and a list is never partial without saying so
(hole 9)."""

from __future__ import annotations

import json
import socket
import threading
import time

import grpc
import pytest

from apphost import server as apphost
from order_service import api
from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as pb_grpc
from order_service.api import OrderApi
from order_service.queries import IndexRow
from order_service.settings import Settings
from order_service.sidecar import ActorCallError


def order_state(order_id: str, status: str = "AWAITING_APPROVAL") -> dict:
    return {"request": {"order_id": order_id, "customer_id": "c-1",
                        "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 150_000}]},
            "status": status, "timeline": [{"at": "2026-01-01T00:00:00+00:00", "step": "place", "outcome": "PLACED"}]}


class FakeActors:
    """Every order waits for its approval for ever; `unreadable` orders cannot be read."""

    def __init__(self, unreadable=(), missing=()):
        self.unreadable, self.missing = set(unreadable), set(missing)

    def call(self, order_id, method, payload=None):
        if order_id in self.unreadable:
            raise ActorCallError("UNAVAILABLE", "actor host not found")
        if method == "place":
            return order_state(order_id, "PLACED")
        return None if order_id in self.missing else order_state(order_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def serve():
    """Start the API as order_service/__main__.py does, with `settings`; its stub."""
    servers = []

    def start(settings: Settings, actors=None):
        app = apphost.new_app(max_workers=api.server_threads(settings.max_watchers))
        app.add_external_service(pb_grpc.add_OrderServiceServicer_to_server,
                                 OrderApi(actors or FakeActors(), max_watchers=settings.max_watchers))
        port = free_port()
        threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        servers.append((app, channel))
        return pb_grpc.OrderServiceStub(channel)

    yield start
    for app, channel in servers:
        channel.close()
        app._server.stop(0)


def drain(stream) -> None:
    try:
        for _ in stream:
            pass
    except grpc.RpcError:
        pass  # cancelled at the end of the test


def open_watches(stub, count: int) -> list:
    """`count` watches, each held open by a reader thread, as many people watching orders."""
    streams = []
    for n in range(count):
        stream = stub.WatchOrder(pb.WatchOrderRequest(order_id=f"w-{n}"), timeout=60)
        threading.Thread(target=drain, args=(stream,), daemon=True).start()
        streams.append(stream)
    return streams


def test_forty_people_watching_orders_do_not_stop_new_orders_or_reads(serve):
    stub = serve(Settings())
    streams = open_watches(stub, 40)
    time.sleep(1)  # every watch is being served
    try:
        placed = stub.PlaceOrder(pb.PlaceOrderRequest(order_id="new-1", customer_id="c-1", items=[
            pb.LineItem(sku="a", quantity=1, unit_price_cents=100)]), timeout=5)
        assert placed.status == "PLACED"
        for n in range(10):
            assert stub.GetOrder(pb.GetOrderRequest(order_id=f"o-{n}"), timeout=5).status == "AWAITING_APPROVAL"
    finally:
        for stream in streams:
            stream.cancel()


def test_a_watch_beyond_the_limit_is_refused_and_one_that_closes_makes_room(serve):
    stub = serve(Settings(max_watchers=3))
    streams = open_watches(stub, 3)
    time.sleep(0.5)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(stub.WatchOrder(pb.WatchOrderRequest(order_id="one-too-many"), timeout=5)))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "3 watches are open" in refused.value.details() and "poll GetOrder" in refused.value.details()
        streams.pop().cancel()
        deadline = time.monotonic() + 10  # the server notices the cancel at its next look (<= 2 s)
        while True:
            try:
                first = next(iter(stub.WatchOrder(pb.WatchOrderRequest(order_id="room-now"), timeout=5)))
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < deadline
                time.sleep(0.2)
        assert first.order_id == "room-now"
    finally:
        for stream in streams:
            stream.cancel()


# ---- ListOrders ---------------------------------------------------------------------------------

class Aborted(Exception):
    pass


class Context:
    def abort(self, code, message):
        raise Aborted(code, message)


class FakeSidecar:
    """The orders index's rows; every saga runs; bulk actions start (and are remembered)."""

    def __init__(self, rows: dict):
        self.rows = rows
        self.engine_asked: list[str] = []
        self.started: list[tuple[str, dict, str]] = []
        self.state: dict[str, bytes] = {}

    def workflow_status(self, instance_id, timeout=10):
        self.engine_asked.append(instance_id)
        return "RUNNING"

    def start_workflow_sync(self, name, workflow_input, instance_id):
        self.started.append((name, workflow_input, instance_id))
        return instance_id

    def get_state_sync(self, store, key, timeout=30):
        return self.state.get(key, b""), "1" if key in self.state else ""

    def save_state_if_sync(self, store, key, value, etag, timeout=30):
        self.state[key] = value


def row(status="AWAITING_APPROVAL", placed="2026-01-01T00:00:00+00:00", **fields) -> IndexRow:
    return IndexRow(status=status, customer=fields.pop("customer", "c-1"), placed=placed, since=placed,
                    version="v3", total_cents=150_000, **fields)


@pytest.fixture()
def listing(monkeypatch):
    def make(rows, actors=None, **api_fields):
        monkeypatch.setattr(api.index, "read_all", lambda client: dict(client.rows))
        return OrderApi(actors or FakeActors(), FakeSidecar(rows), **api_fields)
    return make


def listed(orders, **request) -> pb.ListOrdersResponse:
    return orders.ListOrders(pb.ListOrdersRequest(**request), Context())


def test_a_list_comes_from_the_index_alone_newest_first_in_pages(listing):
    class NoActors(FakeActors):
        def call(self, order_id, method, payload=None):
            raise AssertionError(f"an actor was asked: {order_id} {method}")

    rows = {f"o-{n:02d}": row(placed=f"2026-01-01T00:00:{n:02d}+00:00") for n in range(25)}
    orders = listing(rows, NoActors())
    first = listed(orders, page_size=10)
    assert [o.order_id for o in first.orders] == [f"o-{n:02d}" for n in range(24, 14, -1)]
    assert first.total_matching == 25 and first.next_page_token
    seen = [o.order_id for o in first.orders]
    token = first.next_page_token
    while token:
        page = listed(orders, page_size=10, page_token=token)
        seen += [o.order_id for o in page.orders]
        token = page.next_page_token
    assert seen == sorted(rows, reverse=True)
    assert not orders._sidecar.engine_asked, "a list asked the workflow engine"


def test_new_orders_do_not_shift_the_pages_after_them(listing):
    rows = {f"o-{n}": row(placed=f"2026-01-01T00:00:0{n}+00:00") for n in range(6)}
    orders = listing(rows)
    first = listed(orders, page_size=3)
    rows["o-new"] = row(placed="2026-01-02T00:00:00+00:00")
    second = listed(orders, page_size=3, page_token=first.next_page_token)
    assert [o.order_id for o in second.orders] == ["o-2", "o-1", "o-0"]


def test_filters_select_by_status_customer_reason_time_version_and_age(listing):
    rows = {
        "a": row("FAILED", reason="SHIPPING_FAILED", customer="ann"),
        "b": row("FAILED", reason="OUT_OF_STOCK", customer="ann"),
        "c": row("NEEDS_ATTENTION", customer="bob", placed="2026-02-01T00:00:00+00:00"),
        "d": IndexRow(status="COMPLETED", customer="bob", placed="2026-03-01T00:00:00+00:00", version="v2"),
    }
    orders = listing(rows)
    ids = lambda **f: sorted(o.order_id for o in listed(orders, **f).orders)  # noqa: E731
    assert ids(status="failed") == ["a", "b"]
    assert ids(reason="SHIPPING_FAILED") == ["a"]
    assert ids(customer_id="bob") == ["c", "d"]
    assert ids(placed_after="2026-01-15T00:00:00Z") == ["c", "d"]
    assert ids(placed_before="2026-02-01T00:00:00Z") == ["a", "b"]
    assert ids(saga_version="v2") == ["d"]
    assert ids(in_status_for_s=10**12) == []
    assert ids(in_status_for_s=60) == ["a", "b", "c", "d"]
    assert ids(text="AN", status="FAILED") == ["a", "b"]
    nothing = listed(orders, customer_id="nobody")
    assert not nothing.orders and nothing.total_matching == 0 and not nothing.next_page_token


@pytest.mark.parametrize("request_fields, field", [
    ({"status": "SHIPPED"}, "status"), ({"placed_after": "yesterday"}, "placed_after"),
    ({"customer_id": "x" * 65}, "customer"), ({"page_size": 5000}, "page_size"),
    ({"page_token": "not-a-token"}, "page_token"), ({"in_status_for_s": -1}, "in_status_for_s"),
])
def test_bad_queries_are_invalid_arguments_naming_the_field(listing, request_fields, field):
    with pytest.raises(Aborted) as refused:
        listed(listing({"a": row()}), **request_fields)
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and refused.value.args[1].startswith(field)


def test_a_page_token_of_another_query_is_refused(listing):
    orders = listing({f"o-{n}": row() for n in range(5)})
    token = listed(orders, page_size=2, status="AWAITING_APPROVAL").next_page_token
    with pytest.raises(Aborted) as refused:
        listed(orders, page_size=2, status="COMPLETED", page_token=token)
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and "another query" in refused.value.args[1]


def test_a_reply_is_bounded_whatever_the_index_holds(listing):
    orders = listing({f"o-{n:05d}": row() for n in range(5000)})
    page = listed(orders)
    assert len(page.orders) == 50 and page.total_matching == 5000 and page.ByteSize() < 20_000


def test_a_row_of_an_older_release_is_read_from_its_actor(listing):
    orders = listing({"o-1": IndexRow(status="IN_FLIGHT", legacy=True), "ghost": IndexRow(status="IN_FLIGHT",
                                                                                         legacy=True)},
                     FakeActors(missing={"ghost"}))
    assert [(o.order_id, o.status) for o in listed(orders).orders] == [("o-1", "AWAITING_APPROVAL")]
    assert listed(orders, status="COMPLETED").orders == []


def test_a_terminal_orders_saga_status_comes_from_the_order_alone(listing):
    ended = {**order_state("o-1", "COMPLETED"), "saga_final_status": "COMPLETED",
             "status_since": "2999-01-01T00:00:00+00:00", "saga_instance_id": "order-saga-o-1"}

    class Ended(FakeActors):
        def call(self, order_id, method, payload=None):
            return ended

    orders = listing({}, Ended())
    assert orders.GetOrder(pb.GetOrderRequest(order_id="o-1"), Context()).saga_runtime_status == "COMPLETED"
    ended["status_since"] = "2020-01-01T00:00:00+00:00"  # longer ago than the retention time
    assert orders.GetOrder(pb.GetOrderRequest(order_id="o-1"), Context()).saga_runtime_status == "PURGED"
    assert not orders._sidecar.engine_asked


def test_stuck_orders_are_listed_with_the_engines_word(listing):
    old = "2020-01-01T00:00:00+00:00"
    orders = listing({"slow": row("CHARGING", placed=old), "fine": row("CHARGING", placed="2999-01-01T00:00:00+00:00"),
                      "waiting": row("AWAITING_APPROVAL", placed=old)}, stuck_after_s=600)
    (stuck,) = listed(orders, stuck=True).orders
    assert stuck.order_id == "slow" and stuck.stuck_reason.startswith("NO_PROGRESS")
    assert "workflow RUNNING" in stuck.stuck_reason


def test_an_index_that_cannot_be_read_is_unavailable(monkeypatch):
    def broken(client):
        raise RuntimeError("sqlite: database is locked")

    monkeypatch.setattr(api.index, "read_all", broken)
    with pytest.raises(Aborted) as refused:
        OrderApi(FakeActors(), FakeSidecar({})).ListOrders(pb.ListOrdersRequest(), Context())
    assert refused.value.args[0] == grpc.StatusCode.UNAVAILABLE and "index" in refused.value.args[1]


# ---- a store too busy to answer (issue 22) -------------------------------------------------------

class BusyActors:
    """place fails as the actor's store, or the sidecar on the way, makes it fail under load."""

    def __init__(self, failure):
        self.failure = failure

    def call(self, order_id, method, payload=None):
        raise self.failure


# What the SDK's actor host sends back when a save meets SQLITE_BUSY (its payload, errorCode UNKNOWN)
_BUSY_PAYLOAD = (b'{"message": "<AioRpcError of RPC that terminated with: status = StatusCode.INTERNAL, '
                 b'details = \\"failed to save state: database is locked (5) (SQLITE_BUSY)\\">", '
                 b'"errorCode": "UNKNOWN"}')


def _busy_from_the_actor() -> ActorCallError:
    from order_service.sidecar import _answer
    with pytest.raises(ActorCallError) as failed:
        _answer(_BUSY_PAYLOAD)
    return failed.value


@pytest.mark.parametrize("failure", [
    _busy_from_the_actor(),
    ActorCallError("UNAVAILABLE", "order o-1: publish failed: database table is locked"),
    ActorCallError("UNAVAILABLE", "DEADLINE_EXCEEDED: Deadline Exceeded"),  # the call's own deadline
], ids=["sqlite-busy-in-the-actor", "locked-in-settle", "deadline"])
def test_a_busy_store_reaches_the_client_as_resource_exhausted_without_its_words(serve, failure):
    stub = serve(Settings(), actors=BusyActors(failure))
    request = pb.PlaceOrderRequest(order_id="o-1", customer_id="c-1",
                                   items=[pb.LineItem(sku="a", quantity=1, unit_price_cents=100)])
    with pytest.raises(grpc.RpcError) as refused:
        stub.PlaceOrder(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = refused.value.details()
    assert "retry in about" in details
    assert not any(word in details.lower() for word in ("sqlite", "locked", "database", "deadline"))
    assert dict(refused.value.trailing_metadata()).get("grpc-retry-pushback-ms")
    with pytest.raises(grpc.RpcError) as read:  # reads say the same
        stub.GetOrder(pb.GetOrderRequest(order_id="o-1"), timeout=5)
    assert read.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_store_that_is_down_is_still_unavailable(serve):
    stub = serve(Settings(), actors=BusyActors(ActorCallError("UNAVAILABLE", "order o-1: connection refused")))
    with pytest.raises(grpc.RpcError) as refused:
        stub.PlaceOrder(pb.PlaceOrderRequest(order_id="o-1", customer_id="c-1",
                                             items=[pb.LineItem(sku="a", quantity=1, unit_price_cents=100)]), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- bulk actions ---------------------------------------------------------------------------------

def bulk(orders, action="retry", dry_run=True, confirm_count=0, **filters) -> pb.BulkAction:
    return orders.StartBulkAction(pb.BulkActionRequest(action=action, filter=pb.OrderFilter(**filters),
                                                       dry_run=dry_run, confirm_count=confirm_count,
                                                       operator="ops", note="done by hand"), Context())


def test_a_dry_run_says_what_would_be_touched_and_what_is_left_alone(listing):
    orders = listing({"a": row("NEEDS_ATTENTION"), "b": row("NEEDS_ATTENTION"), "c": row("COMPLETED")})
    preview = bulk(orders, "retry")
    assert (preview.state, preview.selected, preview.left_alone) == ("DRY_RUN", 2, 1)
    assert {r.order_id for r in preview.results} == {"a", "b"} and not orders._sidecar.started


def test_a_bulk_run_needs_the_count_someone_saw(listing):
    orders = listing({f"o-{n}": row("NEEDS_ATTENTION") for n in range(3)})
    with pytest.raises(Aborted) as refused:
        bulk(orders, "retry", dry_run=False, confirm_count=2)
    assert refused.value.args[0] == grpc.StatusCode.FAILED_PRECONDITION and "3 orders" in refused.value.args[1]
    started = bulk(orders, "retry", dry_run=False, confirm_count=3)
    assert started.state == "RUNNING" and started.bulk_id.startswith("bulk-")
    ((name, job, instance),) = orders._sidecar.started
    assert (name, instance, job["action"], job["operator"]) == ("ordersaga_bulk_action", started.bulk_id, "retry",
                                                                "ops")
    assert json.loads(orders._sidecar.state["bulk|recent"]) == [started.bulk_id]


def test_a_bulk_run_that_selects_nothing_says_so(listing):
    orders = listing({"a": row("COMPLETED")})
    with pytest.raises(Aborted) as refused:
        bulk(orders, "retry", dry_run=False, confirm_count=10)
    assert refused.value.args[0] == grpc.StatusCode.FAILED_PRECONDITION and "nothing to do" in refused.value.args[1]
    with pytest.raises(Aborted) as refused:
        bulk(orders, "explode")
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
