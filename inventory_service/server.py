"""inventory-service's gRPC face: stock per SKU and reservations, never oversold.

Rows in its state store: `stock|SKU` (on hand, reserved) and `reservation|KEY` (what the call
with that idempotency key did). Every change is one ETag-conditioned transaction over both,
see apphost.statestore.
"""

from __future__ import annotations

import logging

import grpc

from apphost.server import require
from apphost.statestore import OptimisticStore, Write
from inventory_service import inventory_pb2 as pb
from inventory_service import inventory_pb2_grpc as pb_grpc
from inventory_service.stock import Reservation, Stock

STORE = "inventory-store"
log = logging.getLogger("inventory_service")


def stock_key(sku: str) -> str:
    return f"stock|{sku}"


def reservation_key(idempotency_key: str) -> str:
    return f"reservation|{idempotency_key}"


def _level(stock: Stock) -> pb.StockLevel:
    return pb.StockLevel(sku=stock.sku, on_hand=stock.on_hand, reserved=stock.reserved, available=stock.available)


class InventoryServicer(pb_grpc.InventoryServiceServicer):
    def __init__(self, store: OptimisticStore):
        self._store = store

    def _stock(self, sku: str) -> tuple[Stock, str | None]:
        stock, etag = self._store.read(stock_key(sku), Stock)
        return stock or Stock(sku=sku, on_hand=0), etag

    def Reserve(self, request: pb.ReserveRequest, context) -> pb.ReserveReply:
        require(context, request.idempotency_key, "idempotency_key is required")
        require(context, request.sku, "sku is required")
        require(context, request.quantity > 0, "quantity must be positive")
        key = reservation_key(request.idempotency_key)

        def attempt() -> pb.ReserveReply:
            done, _ = self._store.read(key, Reservation)
            stock, etag = self._stock(request.sku)
            if done is not None:  # a repeat, or a release that came first: the stored answer
                return pb.ReserveReply(reserved=done.state in ("reserved", "committed"),
                                       reason=_reason(done), stock=_level(stock))
            after = stock.reserve(request.quantity)
            if after is None:
                self._store.transact(Write(key, Reservation(sku=request.sku, quantity=request.quantity,
                                                            state="rejected"), new=True))
                return pb.ReserveReply(reserved=False, reason="OUT_OF_STOCK", stock=_level(stock))
            self._store.transact(
                Write(stock_key(request.sku), after, etag=etag, new=etag is None),
                Write(key, Reservation(sku=request.sku, quantity=request.quantity, state="reserved"), new=True),
            )
            return pb.ReserveReply(reserved=True, stock=_level(after))

        reply = self._store.retrying(attempt)
        log.info("reserve key=%s sku=%s qty=%d -> %s", request.idempotency_key, request.sku,
                 request.quantity, "reserved" if reply.reserved else reply.reason)
        return reply

    def Release(self, request: pb.ReservationRef, context) -> pb.StockLevel:
        """Compensation. Unknown key: a tombstone, so a late Reserve with it does nothing."""
        require(context, request.idempotency_key, "idempotency_key is required")
        key = reservation_key(request.idempotency_key)

        def attempt() -> pb.StockLevel:
            done, done_etag = self._store.read(key, Reservation)
            if done is None:
                self._store.transact(Write(key, Reservation(sku="", quantity=0, state="released"), new=True))
                return pb.StockLevel()
            stock, etag = self._stock(done.sku)
            if done.state != "reserved":
                return _level(stock)
            after = stock.release(done.quantity)
            self._store.transact(
                Write(stock_key(done.sku), after, etag=etag),
                Write(key, done.model_copy(update={"state": "released"}), etag=done_etag),
            )
            return _level(after)

        level = self._store.retrying(attempt)
        log.info("release key=%s", request.idempotency_key)
        return level

    def Commit(self, request: pb.ReservationRef, context) -> pb.StockLevel:
        """The sale: on hand and reserved both drop by the reservation's quantity."""
        require(context, request.idempotency_key, "idempotency_key is required")
        key = reservation_key(request.idempotency_key)

        def attempt() -> pb.StockLevel:
            done, done_etag = self._store.read(key, Reservation)
            if done is None or done.state in ("rejected", "released"):
                state = done.state if done else "unknown"
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"reservation {request.idempotency_key} is {state}, it cannot be committed")
            stock, etag = self._stock(done.sku)
            if done.state == "committed":
                return _level(stock)
            after = stock.commit(done.quantity)
            self._store.transact(
                Write(stock_key(done.sku), after, etag=etag),
                Write(key, done.model_copy(update={"state": "committed"}), etag=done_etag),
            )
            return _level(after)

        level = self._store.retrying(attempt)
        log.info("commit key=%s", request.idempotency_key)
        return level

    def SetStock(self, request: pb.SetStockRequest, context) -> pb.StockLevel:
        require(context, request.sku, "sku is required")
        require(context, request.on_hand >= 0, "on_hand must not be negative")

        def attempt() -> pb.StockLevel:
            stock, etag = self._stock(request.sku)
            after = stock.set_on_hand(request.on_hand)
            self._store.transact(Write(stock_key(request.sku), after, etag=etag, new=etag is None))
            return _level(after)

        return self._store.retrying(attempt)

    def GetStock(self, request: pb.GetStockRequest, context) -> pb.StockLevel:
        require(context, request.sku, "sku is required")
        return _level(self._stock(request.sku)[0])


def _reason(reservation: Reservation) -> str:
    return {"rejected": "OUT_OF_STOCK", "released": "RELEASED"}.get(reservation.state, "")
