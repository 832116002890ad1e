"""What `ordersaga approve|reject` says before it publishes (ordersaga/cli_orders.py)."""

from __future__ import annotations

from ordersaga.cli_orders import decision_refusal


def stored(status="AWAITING_APPROVAL", total=150_000, threshold=100_000, decision=""):
    return {"request": {"order_id": "o-1", "customer_id": "c", "items": [
        {"sku": "a", "quantity": 1, "unit_price_cents": total}]},
        "status": status, "decision": decision, "approval_threshold_cents": threshold}


def test_an_order_waiting_for_approval_or_on_its_way_there_takes_a_decision():
    assert decision_refusal("o-1", "approve", stored()) is None
    assert decision_refusal("o-1", "approve", stored(status="RESERVING")) is None  # buffered until the gate


def test_a_decision_no_order_waits_for_says_where_it_would_end():
    assert "does not exist" in decision_refusal("nope", "approve", None)
    assert "not waiting for a decision (it is COMPLETED)" in decision_refusal("o-1", "reject", stored("COMPLETED"))
    assert "does not need approval" in decision_refusal("o-1", "approve", stored("RESERVING", total=500))
    assert "already decided (approve)" in decision_refusal("o-1", "reject", stored(decision="approve"))


def test_an_order_placed_before_the_threshold_was_kept_is_trusted_once_it_waits():
    assert decision_refusal("o-1", "approve", stored(threshold=None)) is None
    assert "does not need approval" in decision_refusal("o-1", "approve", stored("PLACED", threshold=None))
