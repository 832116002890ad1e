"""Each Dapr building block the saga stands on, proven on the real runtime."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from order_service.topics import APPROVALS_DEAD_LETTER_TOPIC, APPROVALS_TOPIC
from ordersaga.eventfeed import feed_for

SMALL_PRICE = 500  # cents; far below the 1000.00 approval threshold
LARGE_PRICE = 200_000  # cents; above it, so the saga waits for approval


def _sku() -> str:
    return f"sku-{uuid.uuid4().hex[:8]}"


def test_actor_stores_the_order_and_starts_the_saga_without_awaiting_it(saga, order_id):
    sku = _sku()
    saga.set_stock(sku, 5)
    started = time.monotonic()
    placed = saga.place(order_id, "cust-1", [(sku, 1, LARGE_PRICE)])
    elapsed = time.monotonic() - started

    # The saga of this order waits for a human, so an actor that awaited it would not return.
    assert placed["status"] == "PLACED"
    assert placed["saga_instance_id"] == f"order-saga-{order_id}"
    assert elapsed < 10
    order = saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    # Saga v3 parks: its first half ends at the approval gate and the order waits on its actor.
    assert saga.wait_for_saga(order_id) == "COMPLETED"
    assert saga.workflow_state(order_id, payloads=True).serialized_output == '"AWAITING_APPROVAL"'
    assert order["request"]["items"][0]["sku"] == sku
    saga.approve(order_id, "reject")  # leave nothing waiting behind
    saga.wait_for_status(order_id, "FAILED")


def test_activity_reserves_and_commits_stock_over_grpc_service_invocation(saga, order_id):
    sku = _sku()
    saga.set_stock(sku, 10)
    saga.place(order_id, "cust-1", [(sku, 3, SMALL_PRICE)])
    saga.wait_for_status(order_id, "COMPLETED")
    stock = saga.get_stock(sku)
    assert (stock.on_hand, stock.reserved, stock.available) == (7, 0, 7)


def test_activities_record_every_step_on_the_actor(saga, order_id):
    sku = _sku()
    saga.set_stock(sku, 1)
    saga.place(order_id, "cust-1", [(sku, 1, SMALL_PRICE)])
    order = saga.wait_for_status(order_id, "COMPLETED")
    steps = [(entry["step"], entry["outcome"]) for entry in order["timeline"]]
    assert steps[0] == ("place", "PLACED")
    assert (f"reserve {sku}", "DONE") in steps and ("authorize", "DONE") in steps
    assert steps[-1] == ("complete", "COMPLETED")
    assert saga.wait_for_saga(order_id) == "COMPLETED"


def test_out_of_stock_is_a_business_result_and_releases_what_was_reserved(saga, order_id):
    plenty, scarce = _sku(), _sku()
    saga.set_stock(plenty, 10)
    saga.set_stock(scarce, 1)
    saga.place(order_id, "cust-1", [(plenty, 2, SMALL_PRICE), (scarce, 2, SMALL_PRICE)])
    order = saga.wait_for_status(order_id, "FAILED")
    assert order["reason"] == "OUT_OF_STOCK"
    assert saga.get_stock(plenty).reserved == 0 and saga.get_stock(plenty).on_hand == 10
    assert saga.get_stock(scarce).on_hand == 1


def test_approval_published_through_another_sidecar_reaches_the_waiting_saga(saga, order_id):
    sku = _sku()
    saga.set_stock(sku, 2)
    saga.place(order_id, "cust-1", [(sku, 1, LARGE_PRICE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    saga.approve(order_id, approver="alice", via="payment-service")
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert ("approval", "APPROVED") in [(e["step"], e["outcome"]) for e in order["timeline"]]
    assert saga.get_stock(sku).on_hand == 1


def test_malformed_approval_goes_to_the_dead_letter_topic(saga, stack):
    marker = uuid.uuid4().hex
    saga.publish(APPROVALS_TOPIC, f"not json {marker}".encode(), content_type="text/plain")
    saga.publish(APPROVALS_TOPIC, json.dumps({"order_id": marker}).encode())  # no decision
    dead = feed_for(stack.state()).read_all(APPROVALS_DEAD_LETTER_TOPIC, lambda body: marker in body, 2, timeout=30)
    assert len(dead) == 2


@pytest.mark.timeout(240)
def test_saga_waiting_for_approval_survives_kill_9_of_order_service(saga, stack, order_id):
    sku = _sku()
    saga.set_stock(sku, 1)
    saga.place(order_id, "cust-1", [(sku, 1, LARGE_PRICE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")

    stack.kill("order-service")
    assert not stack.status()["processes"]["order-service"]["running"]
    stack.up(timeout=120)  # starts only what is missing
    assert stack.status()["running"]

    saga.approve(order_id, approver="after-crash")
    order = saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    outcomes = [e["outcome"] for e in order["timeline"] if e["step"] == "approval"]
    assert outcomes == ["STARTED", "RECEIVED", "APPROVED"]
    assert saga.get_stock(sku).on_hand == 0
