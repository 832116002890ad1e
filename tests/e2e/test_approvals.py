"""Approval CloudEvents from any sidecar: duplicates, late, early, malformed, unknown orders.

Nothing crashes, nothing loops, the right events land in the dead-letter topic, and the saga
state is what it should be.
"""

from __future__ import annotations

import json
import uuid

import pytest

from order_service.topics import APPROVALS_DEAD_LETTER_TOPIC, APPROVALS_TOPIC
from ordersaga.eventfeed import feed_for
from tests.helpers.invariants import check_invariants

LARGE = 150_000


def dead_letters(stack, marker: str, count: int, timeout: float = 30) -> list[dict]:
    bodies = feed_for(stack.state()).read_all(APPROVALS_DEAD_LETTER_TOPIC, lambda body: marker in body, count, timeout)
    return [json.loads(body) for body in bodies]


def decision(order_id: str, verdict: str = "approve", **extra) -> bytes:
    return json.dumps({"order_id": order_id, "decision": verdict, "approver": "qa", **extra}).encode()


def steps(order):
    return [(e["step"], e["outcome"]) for e in order["timeline"]]


def test_many_duplicates_one_decision_and_nothing_dead_lettered(saga, stack, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 2)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    for via in ("inventory-service", "payment-service", "shipping-service", "order-service") * 3:
        saga.publish(APPROVALS_TOPIC, decision(order_id), via=via)
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert steps(order).count(("approval", "RECEIVED")) == 1
    assert ("approval", "APPROVED") in steps(order)
    assert dead_letters(stack, order_id, count=1, timeout=5) == []
    check_invariants(saga, {sku: 2}, [order_id])


def test_an_early_decision_is_applied_when_the_saga_reaches_the_gate(saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 2)
    saga.set_faults("inventory-service", delay_seconds=2, methods=("ReserveLines",))
    try:
        saga.place(order_id, customer, [(sku, 1, LARGE)])
        saga.approve(order_id, approver="early-bird")  # the saga is still reserving
        order = saga.wait_for_status(order_id, "COMPLETED")
    finally:
        saga.clear_faults("inventory-service")
    assert steps(order).index(("approval", "RECEIVED")) < steps(order).index(("approval", "STARTED"))
    check_invariants(saga, {sku: 2}, [order_id])


def test_a_late_decision_is_dead_lettered_and_changes_nothing(saga, stack, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 2)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.approve(order_id, "reject")
    saga.wait_for_status(order_id, "FAILED")
    saga.publish(APPROVALS_TOPIC, decision(order_id, "approve", reason="late"))
    assert len(dead_letters(stack, order_id, count=1)) == 1
    assert saga.get(order_id)["status"] == "FAILED"
    check_invariants(saga, {sku: 2}, [order_id])


def test_orders_that_need_no_approval_and_unknown_orders_are_dead_lettered(saga, stack, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 2)
    saga.place(order_id, customer, [(sku, 1, 100)])
    saga.wait_for_status(order_id, "COMPLETED")
    unknown = ids("never-placed")
    saga.publish(APPROVALS_TOPIC, decision(order_id))
    saga.publish(APPROVALS_TOPIC, decision(unknown))
    assert len(dead_letters(stack, order_id, count=1)) == 1
    assert len(dead_letters(stack, unknown, count=1)) == 1


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"not json at all MARKER", "text/plain"),
        (b'{"order_id": "MARKER"}', "application/json"),  # no decision
        (b'{"order_id": "MARKER", "decision": "maybe"}', "application/json"),  # not a decision
        (b'{"order_id": ["MARKER"], "decision": "approve"}', "application/json"),  # wrong type
        (b'{"order_id": "MARKER", "decision": 1}', "application/json"),
        (b'["MARKER"]', "application/json"),
        (b'{"order_id": "MARKER", "decision": "approve", "reason": "' + b"x" * 500_000 + b'"}', "application/json"),
    ],
    ids=["not-json", "missing-field", "bad-value", "list-id", "number", "array", "huge"],
)
def test_malformed_events_are_dead_lettered_and_nothing_crashes(saga, stack, body, content_type):
    marker = f"m{uuid.uuid4().hex}"
    saga.publish(APPROVALS_TOPIC, body.replace(b"MARKER", marker.encode()), content_type=content_type)
    assert len(dead_letters(stack, marker, count=1)) == 1
    assert stack.status()["running"]


def test_a_payload_beyond_the_broker_limit_is_refused_to_the_publisher(saga, stack):
    too_big = decision("o-x", reason="y" * 2_000_000)
    with pytest.raises(Exception) as refused:
        saga.publish(APPROVALS_TOPIC, too_big)
    assert "500" in str(refused.value) or "413" in str(refused.value) or "payload" in str(refused.value).lower()
    assert stack.status()["running"]
