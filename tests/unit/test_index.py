"""The orders index read whole, without a sidecar: at 100,000 orders no single answer may pass
gRPC's 4 MiB message limit (the Python client's default receive size, and daprd's)."""

from __future__ import annotations

import json
from collections import defaultdict

from order_service import index
from order_service.queries import IndexRow

GRPC_LIMIT = 4 * 2**20


class Store:
    def __init__(self, orders: int):
        shards: dict[str, dict] = defaultdict(dict)
        row = json.loads(IndexRow(status="AWAITING_APPROVAL", customer="park-1234-c17",
                                  placed="2026-01-01T00:00:00.000+00:00", since="2026-01-01T00:00:01.000+00:00",
                                  version="v3", total_cents=200_000, parked=True,
                                  due="2026-01-02T00:00:01.000+00:00").to_json())
        for n in range(orders):
            order_id = f"park-1234-{n}"
            shards[index.shard_key(order_id)][order_id] = row
        self.shards = {key: json.dumps({"orders": rows}).encode() for key, rows in shards.items()}
        self.answers: list[int] = []

    def get_bulk_state(self, store, keys, timeout=60):
        answer = {key: self.shards[key] for key in keys if key in self.shards}
        size = sum(len(key) + len(value) for key, value in answer.items())
        self.answers.append(size)
        assert size < GRPC_LIMIT, f"one GetBulkState answer of {size} bytes: over gRPC's limit"
        return answer


def test_a_hundred_thousand_orders_are_read_in_answers_under_grpcs_limit():
    store = Store(100_000)
    rows = index.read_all(store)
    assert len(rows) == 100_000 and rows["park-1234-99999"].parked
    assert len(store.answers) == index.SHARDS / index.SHARDS_PER_READ
    assert max(store.answers) < GRPC_LIMIT / 4  # room for bigger rows and 4x the orders
