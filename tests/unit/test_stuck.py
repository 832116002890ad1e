"""The stuck scan without a sidecar: it counts the index's stuck orders by reason into the
`ordersaga_stuck_orders` gauge, and asks orders whose row is of an older release to write theirs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from prometheus_client import generate_latest

from order_service import index, queries, stuck


def ago(hours: float) -> str:
    """A time this long before now, read when the test runs (a full run imports this file half an
    hour before it runs it: a time taken at import would no longer be fresh)."""
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat()


class Sidecar:
    def __init__(self, rows: dict[str, object]):
        self.shard = json.dumps({"orders": rows}).encode()
        self.forgotten = []

    def get_bulk_state(self, store, keys, timeout=60):
        first = index.all_shard_keys()[0]
        return {first: self.shard} if first in keys else {}

    def get_state_sync(self, store, key, timeout=30):
        return self.shard, "1"

    def save_state_if_sync(self, store, key, value, etag, timeout=30):
        self.forgotten.append(key)


class Api:
    def __init__(self, sidecar):
        self._sidecar, self._stuck = sidecar, queries.StuckRules(after_s=600)


class Actors:
    def __init__(self):
        self.asked = []

    def call(self, order_id, method, payload=None):
        self.asked.append((order_id, method))
        return None if order_id == "never-saved" else {"status": "COMPLETED"}


def test_the_scan_counts_stuck_orders_by_reason_into_the_gauge_and_reindexes_old_rows():
    old, fresh = ago(2), ago(0)
    rows = {"slow": json.loads(queries.IndexRow(status="SHIPPING", placed=old, since=old).to_json()),
            "moving": json.loads(queries.IndexRow(status="SHIPPING", placed=fresh, since=fresh).to_json()),
            "done": json.loads(queries.IndexRow(status="COMPLETED", placed=old, since=old).to_json()),
            "old-release": "IN_FLIGHT", "never-saved": "IN_FLIGHT"}
    side, actors = Sidecar(rows), Actors()
    counts = stuck.Scan(Api(side), actors, every_s=0).scan_once()
    assert counts == {"NO_PROGRESS": 1}
    metrics = generate_latest().decode()
    assert 'ordersaga_stuck_orders{reason="NO_PROGRESS"} 1.0' in metrics
    assert 'ordersaga_stuck_orders{reason="APPROVAL_OVERDUE"} 0.0' in metrics
    assert sorted(actors.asked) == [("never-saved", "settle"), ("old-release", "settle")]
    assert side.forgotten == [index.shard_key("never-saved")], "an order never saved leaves the index"
