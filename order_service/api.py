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
from datetime import datetime, timezone

import grpc
from pydantic import ValidationError

from order_service import admission, bulk, index, queries
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
_TERMINAL = frozenset(s.value for s in OrderStatus if s.terminal)


def filter_of(message) -> queries.ListFilter:
    """The filter of a ListOrdersRequest or an OrderFilter (the same fields)."""
    return queries.ListFilter(status=message.status, customer=message.customer_id, reason=message.reason,
                              placed_after=message.placed_after, placed_before=message.placed_before,
                              saga_version=message.saga_version, in_status_for_s=message.in_status_for_s,
                              text=message.text, stuck=message.stuck)


def server_threads(max_watchers: int) -> int:
    """The size of the app server's thread pool for `max_watchers` open watches."""
    return UNARY_THREADS + max_watchers


class OrderApi(pb_grpc.OrderServiceServicer):
    def __init__(self, actors: Actors, sidecar: Sidecar | None = None, max_watchers: int = 64,
                 stuck_after_s: int = 600, retention_s: int = 86400):
        self._actors = actors
        self._sidecar = sidecar  # the workflows' states and histories, the orders index
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="list-orders")
        self._stuck = queries.StuckRules(after_s=stuck_after_s)
        self._retention_s = retention_s
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
        """A page of what the filter selects, from the orders index alone (order_service/queries.py):
        no actor is asked (but those of an older release's rows on the page), and the engine
        only for the stuck reason of the page's orders."""
        wanted = self._filter(context, filter_of(request))
        now = datetime.now(timezone.utc)
        rows = self._rows(context)
        try:
            page = queries.select(rows, wanted, page_size=request.page_size, token=request.page_token, now=now,
                                  rules=self._stuck)
        except queries.BadQuery as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        orders = [order for order in self._pool.map(lambda item: self._listed(*item, wanted, now), page.rows)
                  if order is not None]
        return pb.ListOrdersResponse(orders=orders, next_page_token=page.next_token, total_matching=page.matching,
                                     counts_by_status=page.counts)

    def StartBulkAction(self, request: pb.BulkActionRequest, context) -> pb.BulkAction:
        return bulk.start(self, request, context)

    def GetBulkAction(self, request: pb.GetBulkActionRequest, context) -> pb.BulkAction:
        return bulk.get(self, request, context)

    def ListBulkActions(self, request: pb.ListBulkActionsRequest, context) -> pb.ListBulkActionsResponse:
        return bulk.list_recent(self, context)

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

    def _filter(self, context, wanted: queries.ListFilter) -> queries.ListFilter:
        try:
            return wanted.validated()
        except queries.BadQuery as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def _rows(self, context) -> dict[str, queries.IndexRow]:
        try:
            return index.read_all(self._sidecar)
        except Exception as error:  # noqa: BLE001 - the sidecar or the store: a list cannot be made
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the orders index could not be read: {_first_line(error)}")

    def _listed(self, order_id: str, row: queries.IndexRow, wanted: queries.ListFilter,
                now: datetime) -> pb.Order | None:
        """A listed order: its summary from its row. A row of an older release (a bare label)
        is read from the actor instead, and left out if the order no longer matches."""
        if row.legacy:
            try:
                state = self._actors.call(order_id, "get")
            except ActorCallError:
                state = None
            if state is None:
                return None
            order = self._to_proto(state, timeline=False)
            return order if not wanted.status or order.status == wanted.status else None
        order = pb.Order(order_id=order_id, customer_id=row.customer, status=row.status, reason=row.reason,
                         total_cents=row.total_cents, saga_instance_id=row.instance_of(order_id),
                         saga_runtime_status=self._known_saga_status(row.status, row.parked, row.final, row.since, now),
                         placed_at=row.placed, status_since=row.since, saga_version=row.version)
        if wanted.stuck:
            reason = queries.stuck_reason(order_id, row, now, self._stuck)
            engine = "PARKED" if row.parked else self._engine_status(order.saga_instance_id)
            order.saga_runtime_status = engine or "NOT_STARTED"
            order.stuck_reason = reason if row.parked else queries.engine_reason(reason, engine, row.status)
        return order

    def _engine_status(self, instance_id: str) -> str | None:
        try:
            return self._sidecar.workflow_status(instance_id)
        except grpc.RpcError:
            return "UNKNOWN"

    def _known_saga_status(self, status: str, parked: bool, final: str, since: str, now: datetime) -> str:
        """The saga's runtime status when the order alone knows it: a terminal order's (its
        workflow's history purged once the retention time has passed since it ended), a
        parked order's (no workflow waits). "" when only the engine knows."""
        if parked:
            return "PARKED"
        if status in _TERMINAL and final:
            ended = queries.parse_time(since)
            if ended is not None and (now - ended).total_seconds() >= self._retention_s:
                return "PURGED"
            return final
        return ""

    def _to_proto(self, state: dict, timeline: bool = True) -> pb.Order:
        """The order as the API answers it. A terminal or parked order's saga status comes from
        the order alone; only an order in flight (or one that ended before the order kept it)
        makes the engine be asked."""
        status = state["status"]
        runtime_status = self._known_saga_status(status, state.get("parked", False), state.get("saga_final_status", ""),
                                                 state.get("status_since") or "", datetime.now(timezone.utc))
        if not runtime_status:
            runtime_status = self._saga_status(state.get("saga_instance_id", ""), OrderStatus(status).terminal)
        if runtime_status == "STALLED":
            state = self._note_stalled(state)
        request = state["request"]
        items = [pb.LineItem(**item) for item in request["items"]]
        entries = state.get("timeline", [])
        return pb.Order(
            order_id=request["order_id"],
            customer_id=request["customer_id"],
            status=state["status"],
            reason=state.get("reason", ""),
            total_cents=sum(i.quantity * i.unit_price_cents for i in items),
            saga_instance_id=state.get("saga_instance_id", ""),
            saga_runtime_status=runtime_status,
            timeline=[pb.TimelineEntry(at=e["at"], step=e["step"], outcome=e["outcome"], detail=e.get("detail", ""))
                      for e in entries] if timeline else [],
            items=items,
            tracking_number=state.get("tracking_number", ""),
            placed_at=state.get("placed_at") or (entries[0]["at"] if entries else ""),
            status_since=state.get("status_since", ""),
            saga_version=state.get("saga_version", ""),
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


