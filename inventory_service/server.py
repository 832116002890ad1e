"""inventory-service's gRPC face: stock per SKU and reservations, never oversold.

Rows in its state store: `stock|SKU` (on hand, reserved), `reservation|KEY` (what the one-line
call with that idempotency key did) and `lines|KEY` (what the all-lines call did, for every
line of an order). Every change is one ETag-conditioned transaction over the rows it touches,
see apphost.statestore.
"""

from __future__ import annotations

import logging

import grpc

from apphost.server import require
from apphost.statestore import OptimisticStore, Write
from inventory_service import inventory_pb2 as pb
from inventory_service import inventory_pb2_grpc as pb_grpc
from inventory_service.stock import Line, LinesReservation, Reservation, Stock

STORE = "inventory-store"
log = logging.getLogger("inventory_service")


def stock_key(sku: str) -> str:
    return f"stock|{sku}"


def reservation_key(idempotency_key: str) -> str:
    return f"reservation|{idempotency_key}"


def lines_key(idempotency_key: str) -> str:
    return f"lines|{idempotency_key}"


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

    # ---- all of an order's lines at once: one call, one transaction ------------------------------

    def _stocks(self, skus: list[str]) -> dict[str, tuple[Stock, str | None]]:
        rows = self._store.read_many([stock_key(sku) for sku in skus], Stock)
        return {sku: (rows[stock_key(sku)][0] or Stock(sku=sku, on_hand=0), rows[stock_key(sku)][1]) for sku in skus}

    def ReserveLines(self, request: pb.ReserveLinesRequest, context) -> pb.LinesReply:
        require(context, request.idempotency_key, "idempotency_key is required")
        require(context, request.lines, "lines: at least one line is required")
        require(context, all(line.sku for line in request.lines), "lines: every line needs a sku")
        require(context, all(line.quantity > 0 for line in request.lines), "lines: quantity must be positive")
        skus = [line.sku for line in request.lines]
        require(context, len(set(skus)) == len(skus), "lines: each sku may appear on one line only")
        key = lines_key(request.idempotency_key)
        lines = [Line(sku=line.sku, quantity=line.quantity) for line in request.lines]

        def attempt() -> pb.LinesReply:
            done, _ = self._store.read(key, LinesReservation)
            if done is not None:  # a repeat, or a release that came first: the stored answer
                return _lines_reply(done, reserving=True)
            stocks = self._stocks(skus)
            short = [line.sku for line in lines if line.quantity > stocks[line.sku][0].available]
            if short:
                record = LinesReservation(lines=lines, state="rejected", short=short)
                self._store.transact(Write(key, record, new=True))
                return _lines_reply(record, reserving=True)
            record = LinesReservation(lines=lines, state="reserved")
            self._store.transact(
                *(Write(stock_key(line.sku), stocks[line.sku][0].reserve(line.quantity), etag=stocks[line.sku][1],
                        new=stocks[line.sku][1] is None) for line in lines),
                Write(key, record, new=True),
            )
            return _lines_reply(record)

        reply = self._store.retrying(attempt)
        log.info("reserve lines key=%s lines=%d -> %s", request.idempotency_key, len(lines),
                 "reserved" if reply.done else reply.reason)
        return reply

    def ReleaseLines(self, request: pb.ReservationRef, context) -> pb.LinesReply:
        """Compensation. Unknown key: a tombstone, so a late ReserveLines with it does nothing."""
        require(context, request.idempotency_key, "idempotency_key is required")
        reply = self._settle(request.idempotency_key, "released", Stock.release)
        log.info("release lines key=%s", request.idempotency_key)
        return reply

    def CommitLines(self, request: pb.ReservationRef, context) -> pb.LinesReply:
        """The sale: on hand and reserved of every line drop by its quantity."""
        require(context, request.idempotency_key, "idempotency_key is required")
        reply = self._settle(request.idempotency_key, "committed", Stock.commit, context)
        log.info("commit lines key=%s", request.idempotency_key)
        return reply

    def _settle(self, idempotency_key: str, final: str, change, context=None) -> pb.LinesReply:
        """Release or commit every line reserved under the key, once. A commit (`context`
        given) of a key that holds nothing is refused; a release of an unknown key leaves a
        tombstone."""
        key = lines_key(idempotency_key)

        def attempt() -> pb.LinesReply:
            done, done_etag = self._store.read(key, LinesReservation)
            if context is not None and (done is None or done.state in ("rejected", "released")):
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"reservation {idempotency_key} is {done.state if done else 'unknown'}, "
                              "it cannot be committed")
            if done is None:
                tombstone = LinesReservation(lines=[], state="released")
                self._store.transact(Write(key, tombstone, new=True))
                return _lines_reply(tombstone)
            if done.state != "reserved":
                return _lines_reply(done)  # a repeat, or nothing was held
            stocks = self._stocks([line.sku for line in done.lines])
            after = done.model_copy(update={"state": final})
            self._store.transact(
                *(Write(stock_key(line.sku), change(stocks[line.sku][0], line.quantity), etag=stocks[line.sku][1])
                  for line in done.lines),
                Write(key, after, etag=done_etag),
            )
            return _lines_reply(after)

        return self._store.retrying(attempt)

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


def _lines_reply(record: LinesReservation, reserving: bool = False) -> pb.LinesReply:
    """The answer a LinesReservation gives, to the first call and to every repeat. To a
    ReserveLines: whether the lines are held (not when short, nor when released first); to a
    release or commit: done, once the key is settled that way (or held nothing)."""
    if reserving and record.state == "rejected":
        return pb.LinesReply(done=False, reason="OUT_OF_STOCK", lines=[
            pb.LineOutcome(sku=line.sku, done=False,
                           reason="OUT_OF_STOCK" if line.sku in record.short else "NOT_RESERVED")
            for line in record.lines])
    if reserving and record.state == "released":
        return pb.LinesReply(done=False, reason="RELEASED", lines=[
            pb.LineOutcome(sku=line.sku, done=False, reason="RELEASED") for line in record.lines])
    return pb.LinesReply(done=True, lines=[pb.LineOutcome(sku=line.sku, done=True) for line in record.lines])


def _reason(reservation: Reservation) -> str:
    return {"rejected": "OUT_OF_STOCK", "released": "RELEASED"}.get(reservation.state, "")
