"""A small index of orders for ListOrders: actors cannot be enumerated, so each order is noted
in one of a fixed number of shards (`orders-index|NNNN` in order-service's state store) with a
coarse label: IN_FLIGHT, or its terminal status. Sharding keeps ETag contention low when many
orders are placed at once; a label is only a hint, the API reads each order from its actor.
"""

from __future__ import annotations

import zlib

import grpc
from pydantic import BaseModel, Field

from apphost.statestore import is_write_conflict
from order_service.domain import IN_FLIGHT_LABEL
from order_service.sidecar import Sidecar

STORE = "order-store"
# Many small shards: a shard is rewritten whole on every note, so its size, not the number of
# shards, is what each write costs (32 shards made every write grow with the order count).
SHARDS = 1024
IN_FLIGHT = IN_FLIGHT_LABEL
_ATTEMPTS = 50


class Shard(BaseModel):
    orders: dict[str, str] = Field(default_factory=dict)  # order id -> label


def shard_key(order_id: str) -> str:
    return f"orders-index|{zlib.crc32(order_id.encode()) % SHARDS:04d}"


def all_shard_keys() -> list[str]:
    return [f"orders-index|{n:04d}" for n in range(SHARDS)]


async def note(sidecar: Sidecar, order_id: str, label: str) -> None:
    """Record `order_id` with `label`, retrying lost optimistic-concurrency races."""
    key = shard_key(order_id)
    for _ in range(_ATTEMPTS):
        data, etag = await sidecar.get_state(STORE, key)
        shard = Shard.model_validate_json(data) if data else Shard()
        if shard.orders.get(order_id) == label:
            return
        shard.orders[order_id] = label
        try:
            await sidecar.save_state_if(STORE, key, shard.model_dump_json().encode(), etag)
            return
        except grpc.RpcError as error:
            if not is_write_conflict(error):
                raise
    raise RuntimeError(f"could not update {key} after {_ATTEMPTS} attempts")


def read_all(sidecar: Sidecar) -> dict[str, str]:
    """Every indexed order with its label (from a thread: the API runs in threads)."""
    labels: dict[str, str] = {}
    for data in sidecar.get_bulk_state(STORE, all_shard_keys()).values():
        labels.update(Shard.model_validate_json(data).orders)
    return labels
