"""shipping-service's gRPC face: shipments with tracking numbers, created and cancelled once.

Rows in its state store: `shipment|KEY`, written insert-if-absent, so a repeat returns the
stored shipment and a cancel of an unknown key leaves a tombstone a late create respects.
"""

from __future__ import annotations

import logging
import uuid

from pydantic import BaseModel

from apphost.server import require
from apphost.statestore import OptimisticStore, Write
from shipping_service import shipping_pb2 as pb
from shipping_service import shipping_pb2_grpc as pb_grpc

STORE = "shipping-store"
log = logging.getLogger("shipping_service")


class ShipmentRecord(BaseModel):
    order_id: str
    tracking_number: str
    state: str  # CREATED or CANCELLED


def shipment_key(idempotency_key: str) -> str:
    return f"shipment|{idempotency_key}"


def _reply(record: ShipmentRecord | None) -> pb.Shipment:
    if record is None:
        return pb.Shipment()
    return pb.Shipment(order_id=record.order_id, tracking_number=record.tracking_number, state=record.state)


class ShippingServicer(pb_grpc.ShippingServiceServicer):
    def __init__(self, store: OptimisticStore):
        self._store = store

    def CreateShipment(self, request: pb.CreateShipmentRequest, context) -> pb.Shipment:
        require(context, request.idempotency_key, "idempotency_key is required")
        require(context, request.order_id, "order_id is required")
        key = shipment_key(request.idempotency_key)

        def attempt() -> pb.Shipment:
            done, _ = self._store.read(key, ShipmentRecord)
            if done is not None:  # a repeat, or a cancel that came first
                return _reply(done)
            created = ShipmentRecord(order_id=request.order_id, state="CREATED",
                                     tracking_number=f"TRK-{uuid.uuid4().hex[:12].upper()}")
            self._store.transact(Write(key, created, new=True))
            return _reply(created)

        reply = self._store.retrying(attempt)
        log.info("create shipment key=%s -> %s %s", request.idempotency_key, reply.state, reply.tracking_number)
        return reply

    def CancelShipment(self, request: pb.ShipmentRef, context) -> pb.Shipment:
        require(context, request.idempotency_key, "idempotency_key is required")
        key = shipment_key(request.idempotency_key)

        def attempt() -> pb.Shipment:
            done, etag = self._store.read(key, ShipmentRecord)
            if done is None:
                tombstone = ShipmentRecord(order_id="", tracking_number="", state="CANCELLED")
                self._store.transact(Write(key, tombstone, new=True))
                return _reply(tombstone)
            if done.state == "CANCELLED":
                return _reply(done)
            cancelled = done.model_copy(update={"state": "CANCELLED"})
            self._store.transact(Write(key, cancelled, etag=etag))
            return _reply(cancelled)

        reply = self._store.retrying(attempt)
        log.info("cancel shipment key=%s -> %s", request.idempotency_key, reply.state)
        return reply

    def GetShipment(self, request: pb.ShipmentRef, context) -> pb.Shipment:
        require(context, request.idempotency_key, "idempotency_key is required")
        return _reply(self._store.read(shipment_key(request.idempotency_key), ShipmentRecord)[0])
