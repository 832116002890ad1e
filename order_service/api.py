"""orders.v1.OrderService: the public gRPC API, a thin layer over OrderActor.

Served on order-service's app gRPC server, so it is reachable directly and through any sidecar
(`dapr-app-id: order-service`). Input is validated here with the domain's own models, so a bad
request is refused with INVALID_ARGUMENT naming the field before any actor is touched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from pydantic import ValidationError

from order_service import admission, index
from order_service import orders_pb2 as pb
from order_service import orders_pb2_grpc as pb_grpc
from order_service.domain import ID_PATTERN, OrderRequest, OrderStatus, describe
from order_service.sidecar import ActorCallError, Actors, Sidecar, started_version

log = logging.getLogger("order_service.api")
WATCH_POLL_S = 0.25  # how often an open watch looks at its order, at first and after a change
WATCH_POLL_MAX_S = 2.0  # ... and at most, doubling while the order does not change
WATCH_MAX_S = 24 * 3600  # a watch ends after a day even if the order is still in flight
# Threads of order-service's gRPC server for everything but open watches: the API's unary calls
# and the pub/sub deliveries (approvals, order requests). Each open WatchOrder holds a thread of
# its own for as long as it lasts, so the server has these plus one per watch it admits, and a
# watch beyond the limit is refused: watchers can never take the threads new orders and
# approvals need (issue 18, hole 7).
UNARY_THREADS = 32
_ID = re.compile(ID_PATTERN)


def server_threads(max_watchers: int) -> int:
    """The size of the app server's thread pool for `max_watchers` open watches."""
    return UNARY_THREADS + max_watchers


class OrderApi(pb_grpc.OrderServiceServicer):
    def __init__(self, actors: Actors, sidecar: Sidecar | None = None, max_watchers: int = 64):
        self._actors = actors
        self._sidecar = sidecar  # the workflows' states and histories, the orders index
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="list-orders")
        self._max_watchers = max_watchers
        self._watch_slots = threading.BoundedSemaphore(max_watchers)

    def PlaceOrder(self, request: pb.PlaceOrderRequest, context) -> pb.PlaceOrderResponse:
        data = {
            "order_id": request.order_id,
            "customer_id": request.customer_id,
            "items": [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents}
                      for i in request.items],
        }
        try:
            OrderRequest.model_validate(data)
        except ValidationError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, describe(error))
        refusal = admission.current().refusal()
        if refusal:
            _push_back(context)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        order = self._call(context, request.order_id, "place", data)
        return pb.PlaceOrderResponse(order_id=request.order_id, status=order["status"])

    def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.Order:
        return self._order(context, _valid_id(context, request.order_id))

    def CancelOrder(self, request: pb.CancelOrderRequest, context) -> pb.Order:
        order_id = _valid_id(context, request.order_id)
        self._call(context, order_id, "cancel", {"reason": request.reason[:200]})
        return self._order(context, order_id)

    def RetryOrder(self, request: pb.RetryOrderRequest, context) -> pb.Order:
        order_id = _valid_id(context, request.order_id)
        self._call(context, order_id, "retry", {"by": request.operator[:100]})
        return self._order(context, order_id)

    def CloseOrder(self, request: pb.CloseOrderRequest, context) -> pb.Order:
        order_id = _valid_id(context, request.order_id)
        if not request.note.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "note: say what was done by hand")
        self._call(context, order_id, "close", {"by": request.operator[:100], "note": request.note[:500]})
        return self._order(context, order_id)

    def ListOrders(self, request: pb.ListOrdersRequest, context) -> pb.ListOrdersResponse:
        wanted = request.status.strip().upper()
        if wanted and wanted not in OrderStatus.__members__:
            # Quote at most the start of it: a status message (a trailer) over 8 KiB makes the
            # client drop the answer as RESOURCE_EXHAUSTED.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"status: unknown status {request.status[:64]!r}; one of {', '.join(OrderStatus)}")
        try:
            labels = index.read_all(self._sidecar)
        except Exception as error:  # noqa: BLE001 - the sidecar or the store: a list cannot be made
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the orders index could not be read: {_first_line(error)}")
        # A label is a hint: an order labelled IN_FLIGHT may have ended since (its label is
        # written after the order), so it is a candidate for every status, and its actor says.
        candidates = sorted(oid for oid, label in labels.items()
                            if not wanted or label == wanted or label == index.IN_FLIGHT)
        orders, unread = [], []
        for order_id, (order, error) in zip(candidates, self._pool.map(self._order_or_error, candidates)):
            if error:
                unread.append((order_id, error))
            elif order is not None and (not wanted or order.status == wanted):
                orders.append(order)
        if unread:  # never a partial list that does not say so
            first_id, first_error = unread[0]
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"{len(unread)} of {len(candidates)} orders could not be read (first: {first_id}: "
                          f"{first_error[:200]}): try again")
        return pb.ListOrdersResponse(orders=orders)

    def WatchOrder(self, request: pb.WatchOrderRequest, context):
        order_id = _valid_id(context, request.order_id)
        if not self._watch_slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self._max_watchers} watches are open on this replica, its limit "
                          "(ORDERSAGA_MAX_WATCHERS): try again later, or poll GetOrder")
        try:
            yield from self._watch(context, order_id)
        finally:
            self._watch_slots.release()

    def _watch(self, context, order_id: str):
        last, poll = None, WATCH_POLL_S
        deadline = time.monotonic() + WATCH_MAX_S
        while context.is_active() and time.monotonic() < deadline:
            order = self._order(context, order_id)
            seen = (order.status, len(order.timeline), order.saga_runtime_status)
            if seen != last:
                last, poll = seen, WATCH_POLL_S
                yield order
            else:
                poll = min(2 * poll, WATCH_POLL_MAX_S)
            if OrderStatus(order.status).terminal:
                return
            time.sleep(poll)

    # ---- helpers -------------------------------------------------------------------------

    def _call(self, context, order_id: str, method: str, payload=None):
        try:
            return self._actors.call(order_id, method, payload)
        except ActorCallError as error:
            if error.code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED") and admission.overloaded(error.message):
                # A store or sidecar too busy to answer (SQLITE_BUSY, a deadline run out in a
                # queue): a refusal under load, said as one; the store's words go to the log.
                log.warning("order=%s call=%s outcome=BUSY detail=%s", order_id, method, _first_line(error))
                _push_back(context)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              admission.busy_message(f"order {order_id}", admission.current().retry_after_ms))
            context.abort(getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNAVAILABLE), error.message)

    def _order(self, context, order_id: str) -> pb.Order:
        state = self._call(context, order_id, "get")
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {order_id} does not exist")
        return self._to_proto(state)

    def _order_or_error(self, order_id: str) -> tuple[pb.Order | None, str]:
        """The order (None when it does not exist: the index may name an order whose placing
        stopped before it was saved), or why it could not be read."""
        try:
            state = self._actors.call(order_id, "get")
        except ActorCallError as error:
            return None, f"{error.code}: {error.message}"
        return (self._to_proto(state) if state else None), ""

    def _to_proto(self, state: dict) -> pb.Order:
        runtime_status = self._saga_status(state.get("saga_instance_id", ""),
                                           OrderStatus(state["status"]).terminal)
        if runtime_status == "STALLED":
            state = self._note_stalled(state)
        request = state["request"]
        items = [pb.LineItem(**item) for item in request["items"]]
        return pb.Order(
            order_id=request["order_id"],
            customer_id=request["customer_id"],
            status=state["status"],
            reason=state.get("reason", ""),
            total_cents=sum(i.quantity * i.unit_price_cents for i in items),
            saga_instance_id=state.get("saga_instance_id", ""),
            saga_runtime_status=runtime_status,
            timeline=[pb.TimelineEntry(at=e["at"], step=e["step"], outcome=e["outcome"], detail=e.get("detail", ""))
                      for e in state.get("timeline", [])],
            items=items,
            tracking_number=state.get("tracking_number", ""),
        )

    def _note_stalled(self, state: dict) -> dict:
        """A stalled saga gets a timeline entry saying which version it waits for (once; best
        effort: the status itself already says STALLED)."""
        order_id = state["request"]["order_id"]
        try:
            version = started_version(self._sidecar.workflow_history(state["saga_instance_id"], timeout=10))
            return self._actors.call(order_id, "note_stalled", {"version": version or "unknown"}) or state
        except (ActorCallError, grpc.RpcError) as error:
            log.warning("order=%s step=saga outcome=STALLED detail=not noted: %s", order_id, error)
            return state

    def _saga_status(self, instance_id: str, order_ended: bool) -> str:
        """The workflow's runtime status; PURGED once a finished order's workflow history is
        gone (the Configuration's retention policy), NOT_STARTED before it exists."""
        if not instance_id or self._sidecar is None:
            return ""
        try:
            status = self._sidecar.workflow_status(instance_id)
        except grpc.RpcError:
            return "UNKNOWN"
        if status is None:
            return "PURGED" if order_ended else "NOT_STARTED"
        return status


def _push_back(context) -> None:
    """gRPC's trailer for "retry after this long", on a RESOURCE_EXHAUSTED answer."""
    context.set_trailing_metadata(((admission.RETRY_PUSHBACK_KEY, str(admission.current().retry_after_ms)),))


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:300]


def _valid_id(context, order_id: str) -> str:
    # fullmatch: with match, the pattern's `$` also matches before a trailing newline.
    if not _ID.fullmatch(order_id or ""):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      "order_id: must be 1-64 characters of letters, digits, '.', '_', ':' or '-'")
    return order_id


