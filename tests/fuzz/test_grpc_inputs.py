"""Every method of orders.v1.OrderService with generated requests, through order-service's
sidecar as any client calls it (tests/helpers/strategies.py: ids, unicode, sizes, numbers at and
past every bound, empty and huge item lists).

Properties: every answer is a status DESIGN.md names, with a message, and no traceback; nothing
hangs (each call has a deadline, and DEADLINE_EXCEEDED is a violation); a refused PlaceOrder
changes nothing (the order is as it was before, usually absent); an accepted one is stored
exactly as given (read back with GetOrder). Raw bytes that are not a request at all are refused
with INVALID_ARGUMENT too.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from order_service import orders_pb2 as pb
from order_service.domain import ID_PATTERN, OrderRequest
from ordersaga.client import SagaClient
from tests.helpers.strategies import any_text, order_ids, order_requests, tricky_ids, unique

OK = grpc.StatusCode.OK
C = grpc.StatusCode
REFUSALS = {C.INVALID_ARGUMENT, C.ALREADY_EXISTS, C.NOT_FOUND, C.FAILED_PRECONDITION}
MAX_MESSAGE = 4 * 1024 * 1024  # gRPC's default receive limit: beyond it RESOURCE_EXHAUSTED is the answer
DEADLINE_S = 30
GRPC_TESTS = 7  # the tests below, which share the long profile's gRPC time
EXAMPLES = {"PlaceOrder": 100, "GetOrder": 50, "CancelOrder": 30, "RetryOrder": 30, "CloseOrder": 30,
            "ListOrders": 10, "WatchOrder": 20, "raw": 60}


def answer(call, request, **kwargs):
    """(status code, reply or None, details) of one call, however it ends."""
    try:
        reply = call(request, timeout=DEADLINE_S, **kwargs)
        if hasattr(reply, "__next__"):  # a stream: read it to the end
            reply = list(reply)
        return OK, reply, ""
    except grpc.RpcError as error:
        return error.code(), None, error.details() or ""


def check_status(method: str, request, code, details: str, allowed: set) -> None:
    size = request.ByteSize() if hasattr(request, "ByteSize") else len(request)
    if code == C.RESOURCE_EXHAUSTED and size > MAX_MESSAGE:
        return  # too big to receive: the limit says so, and nothing was done
    assert code in allowed, f"{method}({_short(request)}) answered {code.name}: {details[:500]}"
    if code != OK:
        assert details.strip(), f"{method}({_short(request)}) answered {code.name} without a message"
        assert "Traceback" not in details and "Exception calling application" not in details, (
            f"{method}({_short(request)}) leaked an internal error: {details[:500]}")


def _short(request) -> str:
    text = str(request).replace("\n", " ")
    return text if len(text) < 300 else f"{text[:300]}... ({len(text)} characters)"


def stored(orders, order_id: str):
    """The order's request fields as stored, or None when it does not exist (or cannot)."""
    code, order, _ = answer(orders.GetOrder, pb.GetOrderRequest(order_id=order_id))
    if code != OK:
        return None
    return (order.customer_id, [(i.sku, i.quantity, i.unit_price_cents) for i in order.items])


def valid(data: dict) -> bool:
    try:
        OrderRequest.model_validate(data)
    except ValidationError:
        return False
    return True


@pytest.fixture()
def orders(stack):
    return SagaClient(stack.state()).orders()


def run(fuzz, figures, method: str, make_test) -> None:
    """The @given function `make_test()` makes, for the fuzz profile's rounds, counting violations."""
    try:
        for number in fuzz.rounds("grpc", parts=GRPC_TESTS):
            fuzz.explore(make_test, EXAMPLES[method], number)
    except BaseException:
        figures.violations += 1
        raise


# ---- PlaceOrder -----------------------------------------------------------------------------

@pytest.mark.timeout(900)
def test_place_order(stack, orders, fuzz, figures):
    def make():
        @given(data=order_requests())
        @example(data={"order_id": unique(), "customer_id": "c", "items": [{"sku": "apple", "quantity": 2**31 - 1,
                                                                              "unit_price_cents": 2**63 - 1}]})
        @example(data={"order_id": unique(), "customer_id": "c", "items": []})
        @example(data={"order_id": "abc\n", "customer_id": "c", "items": [{"sku": "a", "quantity": 1,
                                                                           "unit_price_cents": 1}]})
        @figures.counting
        def place(data):
            try:
                items = [pb.LineItem(**item) for item in data["items"]]
            except ValueError:
                return  # past int32/int64: no protobuf client can even send it (test_raw_bytes sends bytes)
            request = pb.PlaceOrderRequest(order_id=data["order_id"], customer_id=data["customer_id"], items=items)
            before = stored(orders, data["order_id"])
            code, reply, details = answer(orders.PlaceOrder, request)
            # RESOURCE_EXHAUSTED: admission control, when the examples come faster than sagas end.
            check_status("PlaceOrder", request, code, details, {OK, C.RESOURCE_EXHAUSTED} | REFUSALS)
            given_content = (data["customer_id"], [(i["sku"], i["quantity"], i["unit_price_cents"])
                                                   for i in data["items"]])
            if code == OK:
                assert valid(data), f"PlaceOrder accepted an invalid order: {_short(request)}"
                assert reply.order_id == data["order_id"] and reply.status
                assert stored(orders, data["order_id"]) == given_content, "accepted, but not stored as given"
            else:
                assert stored(orders, data["order_id"]) == before, f"refused ({code.name}), but something changed"
                if before is None and code != C.RESOURCE_EXHAUSTED:
                    assert code == C.INVALID_ARGUMENT and not valid(data), (
                        f"a new valid order was refused with {code.name}: {details}")
        return place

    run(fuzz, figures, "PlaceOrder", make)


# ---- the methods that take an order id ------------------------------------------------------

@pytest.mark.timeout(900)
def test_get_order(stack, orders, fuzz, figures):
    def make():
        @given(order_id=order_ids)
        @example(order_id="abc\n")  # matched the id pattern's `$`, then broke the actor call's URL
        @example(order_id="a" * 100_000)
        @figures.counting
        def get(order_id):
            request = pb.GetOrderRequest(order_id=order_id)
            code, _, details = answer(orders.GetOrder, request)
            check_status("GetOrder", request, code, details, {OK, C.NOT_FOUND, C.INVALID_ARGUMENT})
        return get

    run(fuzz, figures, "GetOrder", make)


@pytest.mark.timeout(900)
def test_cancel_order(stack, orders, fuzz, figures):
    def make():
        @given(order_id=order_ids, reason=st.one_of(any_text, st.integers(0, 5_000_000).map(lambda n: "r" * n)))
        @example(order_id="abc\n", reason="")
        @figures.counting
        def cancel(order_id, reason):
            request = pb.CancelOrderRequest(order_id=order_id, reason=reason)
            before = stored(orders, order_id)
            code, _, details = answer(orders.CancelOrder, request)
            check_status("CancelOrder", request, code, details, {OK} | REFUSALS - {C.ALREADY_EXISTS})
            if before is None:
                assert code != OK and stored(orders, order_id) is None, "a cancel created an order"
        return cancel

    run(fuzz, figures, "CancelOrder", make)


@pytest.mark.timeout(900)
def test_retry_and_close_order(stack, orders, fuzz, figures):
    def make():
        @given(order_id=order_ids, operator=any_text, note=st.one_of(any_text, st.just(" \t\n")), close=st.booleans())
        @example(order_id="abc\n", operator="", note="x", close=True)
        @figures.counting
        def retry_or_close(order_id, operator, note, close):
            if close:
                method, request = "CloseOrder", pb.CloseOrderRequest(order_id=order_id, operator=operator, note=note)
            else:
                method, request = "RetryOrder", pb.RetryOrderRequest(order_id=order_id, operator=operator)
            code, _, details = answer(getattr(orders, method), request)
            # Nothing the fuzz places ever NEEDS_ATTENTION, so both must be refused.
            check_status(method, request, code, details, {C.NOT_FOUND, C.INVALID_ARGUMENT, C.FAILED_PRECONDITION})
        return retry_or_close

    run(fuzz, figures, "RetryOrder", make)


@pytest.mark.timeout(900)
def test_list_orders(stack, orders, fuzz, figures):
    def make():
        @given(status=st.one_of(any_text, st.sampled_from(["completed", " FAILED ", "CANCELLED", "bogus",
                                                           "x" * 10_000])))
        @example(status="x" * 10_000)  # was echoed in the message: a 10 KB trailer, RESOURCE_EXHAUSTED
        @figures.counting
        def list_orders(status):
            request = pb.ListOrdersRequest(status=status)
            code, reply, details = answer(orders.ListOrders, request, )
            check_status("ListOrders", request, code, details, {OK, C.INVALID_ARGUMENT})
            if code == OK and status.strip():
                assert {o.status for o in reply.orders} <= {status.strip().upper()}
        return list_orders

    run(fuzz, figures, "ListOrders", make)


# Only ids that cannot exist: a watch on an order in flight streams until the order ends.
absent_ids = st.one_of(st.builds(unique), tricky_ids.filter(lambda t: not _matches_id(t)),
                       any_text.filter(lambda t: not _matches_id(t)))


def _matches_id(text: str) -> bool:
    import re

    return re.fullmatch(ID_PATTERN, text) is not None


@pytest.mark.timeout(900)
def test_watch_order(stack, orders, fuzz, figures):
    def make():
        @given(order_id=absent_ids)
        @example(order_id="abc\n")
        @figures.counting
        def watch(order_id):
            request = pb.WatchOrderRequest(order_id=order_id)
            code, _, details = answer(orders.WatchOrder, request)
            check_status("WatchOrder", request, code, details, {C.NOT_FOUND, C.INVALID_ARGUMENT})
        return watch

    run(fuzz, figures, "WatchOrder", make)


# ---- bytes that are not a request -----------------------------------------------------------

METHODS = ["PlaceOrder", "GetOrder", "CancelOrder", "ListOrders", "RetryOrder", "CloseOrder"]


@pytest.mark.timeout(900)
def test_raw_bytes(stack, fuzz, figures):
    """What a client with another protobuf library (or a broken one) may send: any bytes, in
    particular strings that are not UTF-8, which proto3 forbids."""
    client = SagaClient(stack.state())
    channel = client._channel()
    target = (("dapr-app-id", "order-service"),)

    def make():
        @given(method=st.sampled_from(METHODS), body=st.one_of(
            st.binary(max_size=200),
            st.binary(max_size=50).map(lambda b: b"\x0a" + bytes([len(b) + 1]) + b + b"\xff"),  # field 1, bad UTF-8
        ))
        @example(method="GetOrder", body=b"\x0a\x02a\xff")
        @figures.counting
        def raw(method, body):
            call = channel.unary_unary(f"/orders.v1.OrderService/{method}", request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            code, _, details = answer(call, body, metadata=target)
            check_status(method, body, code, details, {OK} | REFUSALS)
        return raw

    run(fuzz, figures, "raw", make)
