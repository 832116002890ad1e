"""The orders index: actors cannot be enumerated, so each order keeps a row about itself in one
of a fixed number of shards (`orders-index|NNNN` in order-service's state store), and ListOrders,
the stuck scan and bulk actions read the rows instead of the actors.

The actor writes its row whenever it changes (status, reason, its saga in charge...): the row is
owed with the order's state and paid after each save (OrderActor._settle), so it is never lost,
only late. A row is a few fields (order_service/queries.py's IndexRow), about 150 bytes.

Why this and not Dapr's state query API: in components-contrib v1.18.4 (what daprd 1.18.3 runs)
state.sqlite does not implement it (its features are ETag, transactions, TTL, keys-like), and
of PostgreSQL only the v1 component does, while both profiles here keep actors and workflows in
v2 (RUNTIME.md); actor state is not queryable through it anyway. A secondary index of our own
works on every store Dapr has, with ETag-conditioned writes. What it costs: a query reads every
shard (about 15 MB for 100,000 orders) and filters in order-service: docs/performance.md gives
the figures, and what to do past a few hundred thousand orders.

Sharding keeps ETag contention low when many orders change at once; a shard is rewritten whole on
every note, so its size (orders / 1024), not the number of shards, is what each write costs.
"""

from __future__ import annotations

import json
import zlib

import grpc

from apphost.statestore import is_write_conflict
from order_service.queries import IndexRow
from order_service.sidecar import Sidecar

STORE = "order-store"
SHARDS = 1024
_ATTEMPTS = 50


# A shard's JSON: {"orders": {order id: its row (a compact JSON object), or an older release's
# bare label}}.

def shard_key(order_id: str) -> str:
    return f"orders-index|{zlib.crc32(order_id.encode()) % SHARDS:04d}"


def all_shard_keys() -> list[str]:
    return [f"orders-index|{n:04d}" for n in range(SHARDS)]


async def note(sidecar: Sidecar, order_id: str, row_json: str) -> None:
    """Write `order_id`'s row (its JSON), retrying lost optimistic-concurrency races."""
    await _change(sidecar, order_id, json.loads(row_json))


async def forget(sidecar: Sidecar, order_id: str) -> None:
    """Drop `order_id`'s row (an order that was never saved)."""
    await _change(sidecar, order_id, None)


def forget_sync(sidecar: Sidecar, order_id: str) -> None:
    """`forget`, from a thread."""
    key = shard_key(order_id)
    for _ in range(_ATTEMPTS):
        data, etag = sidecar.get_state_sync(STORE, key)
        changed = _changed(data, order_id, None)
        if changed is None:
            return
        try:
            sidecar.save_state_if_sync(STORE, key, changed, etag)
            return
        except grpc.RpcError as error:
            if not is_write_conflict(error):
                raise
    raise RuntimeError(f"could not update {key} after {_ATTEMPTS} attempts")


async def _change(sidecar: Sidecar, order_id: str, value: dict | None) -> None:
    key = shard_key(order_id)
    for _ in range(_ATTEMPTS):
        data, etag = await sidecar.get_state(STORE, key)
        changed = _changed(data, order_id, value)
        if changed is None:
            return
        try:
            await sidecar.save_state_if(STORE, key, changed, etag)
            return
        except grpc.RpcError as error:
            if not is_write_conflict(error):
                raise
    raise RuntimeError(f"could not update {key} after {_ATTEMPTS} attempts")


def _changed(data: bytes, order_id: str, value: dict | None) -> bytes | None:
    """The shard with `order_id`'s row set to `value` (None: dropped), or None if it already is."""
    shard = json.loads(data) if data else {"orders": {}}
    orders = shard.setdefault("orders", {})
    if orders.get(order_id) == value or (value is None and order_id not in orders):
        return None
    if value is None:
        del orders[order_id]
    else:
        orders[order_id] = value
    return json.dumps(shard, separators=(",", ":")).encode()


# Shards per GetBulkState: one answer carrying every shard would pass gRPC's 4 MiB message
# limit (the client's and daprd's) at about 20,000 orders; 32 shards of 100,000 orders' rows
# are about 0.6 MB.
SHARDS_PER_READ = 32


def read_all(sidecar: Sidecar) -> dict[str, IndexRow]:
    """Every indexed order with its row (from a thread: the API runs in threads)."""
    rows: dict[str, IndexRow] = {}
    keys = all_shard_keys()
    for start in range(0, len(keys), SHARDS_PER_READ):
        for data in sidecar.get_bulk_state(STORE, keys[start:start + SHARDS_PER_READ]).values():
            for order_id, value in json.loads(data).get("orders", {}).items():
                rows[order_id] = IndexRow.parse(value)
    return rows
