"""Bulk actions' parts without a sidecar: what a filter selects for each action, the pace, and
what one order's answer means for the report."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from order_service import bulk
from order_service.messages import BulkInput
from order_service.queries import IndexRow, ListFilter, StuckRules
from order_service.sidecar import ActorCallError

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)


def test_each_action_selects_the_statuses_it_applies_to_oldest_first_and_counts_the_rest():
    rows = {"new": IndexRow(status="NEEDS_ATTENTION", placed="2026-01-01T02:00:00+00:00"),
            "old": IndexRow(status="NEEDS_ATTENTION", placed="2026-01-01T01:00:00+00:00"),
            "wait": IndexRow(status="AWAITING_APPROVAL", placed="2026-01-01T03:00:00+00:00"),
            "done": IndexRow(status="COMPLETED", placed="2026-01-01T00:00:00+00:00")}
    chosen, left_alone = bulk.selection(rows, "retry", ListFilter(), NOW, StuckRules())
    assert [order_id for order_id, _ in chosen] == ["old", "new"] and left_alone == 2
    chosen, _ = bulk.selection(rows, "cancel", ListFilter(), NOW, StuckRules())
    assert [order_id for order_id, _ in chosen] == ["wait"]
    assert bulk.selection(rows, "approve", ListFilter(status="COMPLETED"), NOW, StuckRules()) == ([], 1)


def test_the_pace_spaces_starts_evenly():
    clock = [0.0]
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    pace = bulk.Pace(4.0, clock=lambda: clock[0], sleep=sleep)

    async def five():
        for _ in range(5):
            await pace.wait()
    asyncio.run(five())
    assert slept == [0.25, 0.25, 0.25, 0.25]


@pytest.mark.parametrize("answer, outcome", [
    ({"status": "COMPLETED"}, "CHANGED"),
    ({"outcome": "duplicate", "decision": "approve"}, "SKIPPED"),
    (ActorCallError("FAILED_PRECONDITION", "order o-1 is COMPLETED"), "SKIPPED"),
    (ActorCallError("UNAVAILABLE", "actor host not found"), "FAILED"),
])
def test_what_an_answer_means_for_the_report(monkeypatch, answer, outcome):
    class Sidecar:
        async def call_actor_async(self, actor_type, order_id, method, payload):
            self.called = (method, payload)
            if isinstance(answer, Exception):
                raise answer
            return answer

    fake = Sidecar()
    monkeypatch.setattr(bulk, "sidecar", lambda: fake)
    job = BulkInput(bulk_id="bulk-1", action="approve", filter={}, operator="ops")
    assert asyncio.run(bulk.apply_one(job, "o-1"))[0] == outcome
    assert fake.called == ("decide", {"order_id": "o-1", "decision": "approve", "approver": "ops", "reason": ""})


class StoreSidecar:
    """order-service's store and actors, in memory: what bulk_apply reads, writes and calls."""

    def __init__(self, state: dict[str, bytes], fail_after: int = 0):
        self.state, self.calls, self.fail_after = dict(state), [], fail_after

    async def get_state(self, store, key):
        return self.state.get(key, b""), "1"

    async def save_state(self, store, key, value):
        self.state[key] = value

    async def call_actor_async(self, actor_type, order_id, method, payload):
        if self.fail_after and len(self.calls) >= self.fail_after:
            raise RuntimeError("the host went away")  # the activity dies mid-chunk
        self.calls.append(order_id)
        return {"status": "CANCELLED"}


def test_a_chunk_cut_short_by_a_crash_resumes_without_asking_the_reported_orders_again(monkeypatch):
    """A bulk action is resumable: the activity that runs again after a crash skips every order
    its report already holds (saved every SAVE_EVERY), so only the few since the last save are
    asked twice, and the report ends with each order once."""
    import json

    orders = [[f"o-{n}", "AWAITING_APPROVAL"] for n in range(60)]
    job = BulkInput(bulk_id="bulk-9", action="cancel", filter={}, operator="ops", rate_per_s=1000)
    stored = {bulk.ids_key("bulk-9", 0): json.dumps(orders).encode()}
    monkeypatch.setattr(bulk, "CONCURRENT_CALLS", 1)
    crashed = StoreSidecar(stored, fail_after=30)
    monkeypatch.setattr(bulk, "sidecar", lambda: crashed)
    with pytest.raises(RuntimeError):
        asyncio.run(bulk.bulk_apply(None, bulk.BulkChunk(job=job, number=0)))
    saved = json.loads(crashed.state[bulk.report_key("bulk-9", 0)])
    assert len(saved) == bulk.SAVE_EVERY  # what the crash left: the first save

    again = StoreSidecar(crashed.state)
    monkeypatch.setattr(bulk, "sidecar", lambda: again)
    counts = asyncio.run(bulk.bulk_apply(None, bulk.BulkChunk(job=job, number=0)))
    assert not set(again.calls) & {entry[0] for entry in saved}, "a reported order was asked again"
    report = json.loads(again.state[bulk.report_key("bulk-9", 0)])
    assert sorted(entry[0] for entry in report) == sorted(order_id for order_id, _ in orders)
    assert (counts.done, counts.changed) == (60, 60)
