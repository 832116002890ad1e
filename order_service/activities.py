"""Saga activities: each is one side effect, a thin adapter around one call.

Activities run at least once, so every call carries a business idempotency key and the callee
stores its result under that key. Business failures (out of stock) come back as results;
only technical failures raise, which is what the saga's retry policy retries.
"""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
from dapr.actor import ActorId, ActorProxy
from dapr.ext.workflow import WorkflowActivityContext

from inventory_service import inventory_pb2, inventory_pb2_grpc
from order_service.actor import ACTOR_TYPE
from order_service.messages import StepRecord, StockLine, StockResult

log = logging.getLogger("order_service.activities")

INVENTORY_APP_ID = "inventory-service"
_CALL_TIMEOUT_S = 10.0
_channels: dict[int, grpc.aio.Channel] = {}


def _sidecar_channel() -> grpc.aio.Channel:
    """One aio channel to our own sidecar per event loop (aio channels are loop-bound)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _channels:
        host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
        _channels[loop_id] = grpc.aio.insecure_channel(f"{host}:{os.environ['DAPR_GRPC_PORT']}")
    return _channels[loop_id]


def _invoke(app_id: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata that makes the sidecar proxy the call to `app_id` (service invocation)."""
    return (("dapr-app-id", app_id),)


def _inventory() -> inventory_pb2_grpc.InventoryServiceStub:
    return inventory_pb2_grpc.InventoryServiceStub(_sidecar_channel())


async def reserve_stock(ctx: WorkflowActivityContext, line: StockLine) -> StockResult:
    reply = await _inventory().Reserve(
        inventory_pb2.ReserveRequest(idempotency_key=line.idempotency_key, sku=line.sku, quantity=line.quantity),
        metadata=_invoke(INVENTORY_APP_ID),
        timeout=_CALL_TIMEOUT_S,
    )
    return StockResult(ok=reply.reserved, reason=reply.reason)


async def release_stock(ctx: WorkflowActivityContext, line: StockLine) -> StockResult:
    await _inventory().Release(
        inventory_pb2.ReservationRef(idempotency_key=line.idempotency_key),
        metadata=_invoke(INVENTORY_APP_ID),
        timeout=_CALL_TIMEOUT_S,
    )
    return StockResult(ok=True)


async def commit_stock(ctx: WorkflowActivityContext, line: StockLine) -> StockResult:
    await _inventory().Commit(
        inventory_pb2.ReservationRef(idempotency_key=line.idempotency_key),
        metadata=_invoke(INVENTORY_APP_ID),
        timeout=_CALL_TIMEOUT_S,
    )
    return StockResult(ok=True)


async def record_step(ctx: WorkflowActivityContext, record: StepRecord) -> None:
    """Write one timeline entry (and maybe a status) onto the order's actor."""
    proxy = ActorProxy.create(ACTOR_TYPE, ActorId(record.order_id))
    entry = {"step": record.step, "outcome": record.outcome, "detail": record.detail, "key": record.key}
    await proxy.invoke_method("record_step", _json({"entry": entry, "status": record.status, "reason": record.reason}))


def _json(value: object) -> bytes:
    import json

    return json.dumps(value).encode()


# Registered under these names: renaming a Python function must never break replay.
ACTIVITIES = {
    "reserve_stock": reserve_stock,
    "release_stock": release_stock,
    "commit_stock": commit_stock,
    "record_step": record_step,
}
