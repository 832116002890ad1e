"""orders.v1.OrderService on a real gRPC server, built as order-service's composition root builds
it, over a fake actor client (no sidecar): open watches never take the threads that new orders,
reads and approvals need (issue 18, hole 7), and a list is never partial without saying so
(hole 9)."""

from __future__ import annotations

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
    """The orders index's labels; every saga runs."""

    def __init__(self, labels: dict[str, str]):
        self.labels = labels

    def workflow_status(self, instance_id):
        return "RUNNING"


@pytest.fixture()
def listing(monkeypatch):
    def make(labels, actors):
        monkeypatch.setattr(api.index, "read_all", lambda client: dict(client.labels))
        return OrderApi(actors, FakeSidecar(labels))
    return make


def test_an_order_that_cannot_be_read_fails_the_list_instead_of_leaving_it_out(listing):
    orders = listing({"o-1": "IN_FLIGHT", "o-2": "IN_FLIGHT"}, FakeActors(unreadable={"o-2"}))
    with pytest.raises(Aborted) as refused:
        orders.ListOrders(pb.ListOrdersRequest(), Context())
    assert refused.value.args[0] == grpc.StatusCode.UNAVAILABLE
    assert "1 of 2 orders could not be read" in refused.value.args[1] and "o-2" in refused.value.args[1]


def test_an_index_entry_without_an_order_is_left_out(listing):
    """A placing that stopped before the order was saved leaves an index entry and no order."""
    orders = listing({"o-1": "IN_FLIGHT", "ghost": "IN_FLIGHT"}, FakeActors(missing={"ghost"}))
    assert [o.order_id for o in orders.ListOrders(pb.ListOrdersRequest(), Context()).orders] == ["o-1"]


def test_an_order_whose_label_is_behind_is_listed_under_its_real_status(listing):
    """The label is written after the order: an order that ended while its label still says
    IN_FLIGHT is found under its terminal status too."""
    class Ended(FakeActors):
        def call(self, order_id, method, payload=None):
            return order_state(order_id, "COMPLETED")

    orders = listing({"o-1": "IN_FLIGHT"}, Ended())
    assert [o.order_id for o in orders.ListOrders(pb.ListOrdersRequest(status="COMPLETED"), Context()).orders] \
        == ["o-1"]


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
