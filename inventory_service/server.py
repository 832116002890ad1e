"""The gRPC face of inventory-service: validates requests and maps them onto the store."""

from __future__ import annotations

import logging

import grpc

from inventory_service import inventory_pb2 as pb
from inventory_service import inventory_pb2_grpc as pb_grpc
from inventory_service.stock import Reservation, Stock
from inventory_service.store import InventoryStore

log = logging.getLogger("inventory_service")


def _level(stock: Stock) -> pb.StockLevel:
    return pb.StockLevel(sku=stock.sku, on_hand=stock.on_hand, reserved=stock.reserved, available=stock.available)


class InventoryServicer(pb_grpc.InventoryServiceServicer):
    def __init__(self, store: InventoryStore):
        self._store = store

    def Reserve(self, request: pb.ReserveRequest, context: grpc.ServicerContext) -> pb.ReserveReply:
        _require(context, request.idempotency_key, "idempotency_key is required")
        _require(context, request.sku, "sku is required")
        _require(context, request.quantity > 0, "quantity must be positive")

        def attempt() -> pb.ReserveReply:
            done = self._store.get_reservation(request.idempotency_key)
            stock, etag = self._store.get_stock(request.sku)
            if done is not None:
                return pb.ReserveReply(reserved=done.state != "rejected", reason=_reason(done), stock=_level(stock))
            after = stock.reserve(request.quantity)
            if after is None:
                rejected = Reservation(sku=request.sku, quantity=request.quantity, state="rejected")
                self._store.save_reservation(request.idempotency_key, rejected)
                return pb.ReserveReply(reserved=False, reason="OUT_OF_STOCK", stock=_level(stock))
            reservation = Reservation(sku=request.sku, quantity=request.quantity, state="reserved")
            self._store.write(after, etag, request.idempotency_key, reservation)
            return pb.ReserveReply(reserved=True, stock=_level(after))

        reply = self._store.with_retry(attempt)
        log.info("reserve key=%s sku=%s qty=%d -> %s", request.idempotency_key, request.sku,
                 request.quantity, "reserved" if reply.reserved else reply.reason)
        return reply

    def Release(self, request: pb.ReservationRef, context: grpc.ServicerContext) -> pb.StockLevel:
        return self._finish(request, context, "released", Stock.release)

    def Commit(self, request: pb.ReservationRef, context: grpc.ServicerContext) -> pb.StockLevel:
        return self._finish(request, context, "committed", Stock.commit)

    def _finish(self, request: pb.ReservationRef, context, final_state: str, change) -> pb.StockLevel:
        _require(context, request.idempotency_key, "idempotency_key is required")

        def attempt() -> pb.StockLevel | None:
            done = self._store.get_reservation(request.idempotency_key)
            if done is None:
                return None
            stock, etag = self._store.get_stock(done.sku)
            if done.state != "reserved":  # rejected, or already released/committed: a no-op
                return _level(stock)
            after = change(stock, done.quantity)
            self._store.write(after, etag, request.idempotency_key, done.model_copy(update={"state": final_state}))
            return _level(after)

        level = self._store.with_retry(attempt)
        log.info("%s key=%s", final_state, request.idempotency_key)
        return level if level is not None else pb.StockLevel()

    def SetStock(self, request: pb.SetStockRequest, context: grpc.ServicerContext) -> pb.StockLevel:
        _require(context, request.sku, "sku is required")
        _require(context, request.on_hand >= 0, "on_hand must not be negative")

        def attempt() -> pb.StockLevel:
            stock, etag = self._store.get_stock(request.sku)
            after = stock.set_on_hand(request.on_hand)
            self._store.write(after, etag)
            return _level(after)

        return self._store.with_retry(attempt)

    def GetStock(self, request: pb.GetStockRequest, context: grpc.ServicerContext) -> pb.StockLevel:
        _require(context, request.sku, "sku is required")
        stock, _ = self._store.get_stock(request.sku)
        return _level(stock)


def _reason(reservation: Reservation) -> str:
    return "OUT_OF_STOCK" if reservation.state == "rejected" else ""


def _require(context: grpc.ServicerContext, condition: object, message: str) -> None:
    if not condition:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
