"""The orders index's rows and the queries over them (order_service/queries.py): pure, no sidecar."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from order_service import order_rules as rules
from order_service import queries
from order_service.domain import OrderRequest
from order_service.queries import IndexRow, ListFilter, StuckRules

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)
LONG_AGO = (NOW - timedelta(hours=1)).isoformat()
JUST_NOW = (NOW - timedelta(seconds=5)).isoformat()


def test_an_orders_row_is_small_and_reads_back_as_written():
    order = rules.new_order(OrderRequest(order_id="o-1", customer_id="ann", items=[
        {"sku": "a", "quantity": 2, "unit_price_cents": 500}]), at=LONG_AGO, trace_parent="", threshold_cents=100,
        saga_version="v3")
    text = IndexRow.of(order).to_json()
    assert len(text) < 200
    import json
    row = IndexRow.parse(json.loads(text))
    assert (row.status, row.customer, row.total_cents, row.version, row.placed) == ("PLACED", "ann", 1000, "v3",
                                                                                    LONG_AGO)
    assert row.instance_of("o-1") == "order-saga-o-1"
    assert IndexRow.parse("COMPLETED").legacy


@pytest.mark.parametrize("row, reason", [
    (IndexRow(status="SHIPPING", since=LONG_AGO), "NO_PROGRESS"),
    (IndexRow(status="SHIPPING", since=JUST_NOW), ""),
    (IndexRow(status="AWAITING_APPROVAL", since=LONG_AGO), ""),  # waiting by design
    (IndexRow(status="AWAITING_APPROVAL", since=LONG_AGO, parked=True, due=LONG_AGO), "APPROVAL_OVERDUE"),
    (IndexRow(status="AWAITING_APPROVAL", since=LONG_AGO, parked=True, due=JUST_NOW), ""),
    (IndexRow(status="AWAITING_APPROVAL", since=LONG_AGO, decided=LONG_AGO), "DECISION_NOT_TAKEN"),
    (IndexRow(status="COMPLETED", since=LONG_AGO), ""),
    (IndexRow(status="IN_FLIGHT", legacy=True), ""),
])
def test_what_counts_as_stuck(row, reason):
    found = queries.stuck_reason("o-1", row, NOW, StuckRules(after_s=600))
    assert found.split(":", 1)[0] == reason if reason else found == ""


def test_the_engine_says_why_a_stuck_order_is_stuck():
    assert queries.engine_reason("NO_PROGRESS: x", "STALLED", "SHIPPING").startswith("STALLED")
    assert queries.engine_reason("NO_PROGRESS: x", None, "PLACED").startswith("NOT_STARTED")
    assert queries.engine_reason("NO_PROGRESS: x", "FAILED", "CHARGING").startswith("SAGA_ENDED")
    assert queries.engine_reason("NO_PROGRESS: x", "RUNNING", "CHARGING") == "NO_PROGRESS: x (workflow RUNNING)"


def test_a_page_counts_every_status_the_rest_of_the_filter_matches():
    rows = {"a": IndexRow(status="FAILED", customer="ann"), "b": IndexRow(status="COMPLETED", customer="ann"),
            "c": IndexRow(status="FAILED", customer="bob")}
    page = queries.select(rows, ListFilter(status="FAILED", customer="ann").validated(), now=NOW)
    assert [order_id for order_id, _ in page.rows] == ["a"] and page.counts == {"FAILED": 1, "COMPLETED": 1}


def test_a_token_is_bound_to_its_query_and_anything_else_is_refused():
    rows = {f"o-{n}": IndexRow(status="PLACED", placed=f"2026-01-01T00:00:0{n}+00:00") for n in range(5)}
    page = queries.select(rows, ListFilter(), page_size=2, now=NOW)
    assert [o for o, _ in page.rows] == ["o-4", "o-3"]
    again = queries.select(rows, ListFilter(), page_size=2, token=page.next_token, now=NOW)
    assert [o for o, _ in again.rows] == ["o-2", "o-1"]
    for token in ("", "!!!", "eyJ4IjogMX0"):
        if token:
            with pytest.raises(queries.BadQuery, match="page_token"):
                queries.select(rows, ListFilter(), token=token, now=NOW)
    with pytest.raises(queries.BadQuery, match="another query"):
        queries.select(rows, ListFilter(status="PLACED"), token=page.next_token, now=NOW)


def test_counts_of_stuck_orders_by_reason():
    rows = {"a": IndexRow(status="CHARGING", since=LONG_AGO), "b": IndexRow(status="SHIPPING", since=LONG_AGO),
            "c": IndexRow(status="AWAITING_APPROVAL", parked=True, due=LONG_AGO, since=LONG_AGO)}
    assert queries.counts_by_reason(rows, NOW, StuckRules(after_s=60)) == {"NO_PROGRESS": 2, "APPROVAL_OVERDUE": 1}
