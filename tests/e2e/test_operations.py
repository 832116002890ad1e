"""Operating many orders on the real stack (issue "Operating at scale"): paged and filtered
lists, parked orders that wait without a workflow, bulk actions with a dry run, dead-letter
redrive, and the stuck listing; through the CLI and the gRPC API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import grpc
import pytest

from order_service import orders_pb2 as pb
from order_service.topics import APPROVALS_TOPIC, REQUESTS_TOPIC

LARGE, SMALL = 150_000, 1_250  # cents: above and below the approval threshold


@pytest.fixture()
def cli(stack):
    env = dict(os.environ, ORDERSAGA_HOME=str(stack.run_dir), USER="e2e-operator")

    def run(*args, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ordersaga.cli", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
    return run


def place_many(saga, ids, customer: str, count: int, price: int, sku: str = "") -> list[str]:
    sku = sku or ids("sku")
    saga.set_stock(sku, 100)
    saga.set_credit(customer, 10**9)
    orders = [ids("o") for _ in range(count)]
    for order_id in orders:
        saga.place(order_id, customer, [(sku, 1, price)])
    return orders


def wait_until(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not after {timeout}s: {what}")


# ---- queries ---------------------------------------------------------------------------------------

def test_list_pages_through_a_filter_in_a_stable_order_and_says_when_nothing_matches(saga, cli, ids):
    customer = ids("c")
    orders = place_many(saga, ids, customer, 7, SMALL)
    for order_id in orders:
        saga.wait_for_status(order_id, "COMPLETED")
    seen, token = [], ""
    while True:
        more = ["--page-token", token] if token else []
        page = json.loads(cli("list", "--customer", customer, "--page-size", "3", "--json", *more).stdout)
        assert len(page["orders"]) <= 3 and page["total_matching"] == 7
        seen += [o["order_id"] for o in page["orders"]]
        token = page["next_page_token"]
        if not token:
            break
    assert sorted(seen) == sorted(orders) and len(seen) == 7
    assert all(o["status"] == "COMPLETED" and o["saga_version"] == "v3" and o["placed_at"]
               for o in json.loads(cli("list", "--customer", customer, "--all", "--json").stdout)["orders"])
    assert cli("list", "--customer", customer, "--status", "FAILED").stdout.startswith("No orders match")

    api = saga.orders()
    first = api.ListOrders(pb.ListOrdersRequest(customer_id=customer, page_size=2), timeout=60)
    with pytest.raises(grpc.RpcError) as refused:
        api.ListOrders(pb.ListOrdersRequest(customer_id=ids("c"), page_size=2, page_token=first.next_page_token),
                       timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "another query" in refused.value.details()
    bad = cli("list", "--customer", customer, "--page-token", "garbage")
    assert bad.returncode == 1 and "INVALID_ARGUMENT: page_token" in bad.stderr


def test_a_parked_order_waits_without_a_workflow_and_an_ended_one_answers_from_the_order(saga, ids):
    (order_id,) = place_many(saga, ids, ids("c"), 1, LARGE)
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    api = saga.orders()
    parked = wait_until(lambda: (o := api.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30))
                        .saga_runtime_status == "PARKED" and o, "the order parks")
    assert parked.saga_instance_id == f"order-saga-{order_id}"
    saga.approve(order_id, approver="e2e")
    saga.wait_for_status(order_id, "COMPLETED")
    ended = api.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)
    assert ended.saga_instance_id == f"order-saga-{order_id}-decided" and ended.saga_runtime_status == "COMPLETED"
    steps = [(e.step, e.outcome) for e in ended.timeline]
    assert ("approval", "RECEIVED") in steps and ("approval", "APPROVED") in steps and steps[-1][1] == "COMPLETED"


# ---- bulk actions ----------------------------------------------------------------------------------

def test_a_bulk_approval_needs_a_dry_run_or_yes_and_reports_every_order(saga, cli, ids):
    customer = ids("c")
    orders = place_many(saga, ids, customer, 5, LARGE)
    for order_id in orders:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    bare = cli("bulk", "approve", "--customer", customer)
    assert bare.returncode == 2 and "--dry-run" in bare.stderr and "--yes" in bare.stderr
    preview = cli("bulk", "approve", "--customer", customer, "--dry-run")
    assert preview.returncode == 0 and preview.stdout.startswith("5 orders would be approved")
    assert all(order_id in preview.stdout for order_id in orders)
    for order_id in orders:
        assert saga.get(order_id)["status"] == "AWAITING_APPROVAL", "a dry run changed an order"

    done = cli("bulk", "approve", "--customer", customer, "--yes", "--rate", "50", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert (report["state"], report["selected"], report["changed"], report["failed"]) == ("COMPLETED", 5, 5, 0)
    assert sorted(r["order_id"] for r in report["results"]) == sorted(orders)
    for order_id in orders:
        order = saga.wait_for_status(order_id, "COMPLETED")
        assert any(e["step"] == "approval" and "e2e-operator" in e["detail"] for e in order["timeline"])
    again = cli("bulk", "approve", "--customer", customer, "--yes")
    assert again.returncode == 1 and "nothing to do" in again.stdout
    listed = cli("bulk", "list")
    assert report["bulk_id"] in listed.stdout


def test_after_a_shipping_outage_the_orders_left_to_a_person_are_retried_in_bulk(saga, cli, ids):
    customer = ids("c")
    saga.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment", "CancelShipment"))
    try:
        orders = place_many(saga, ids, customer, 3, SMALL)
        for order_id in orders:
            saga.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=180)
    finally:
        saga.clear_faults("shipping-service")
    stuck_ones = json.loads(cli("list", "--customer", customer, "--status", "NEEDS_ATTENTION", "--json").stdout)
    assert sorted(o["order_id"] for o in stuck_ones["orders"]) == sorted(orders)
    done = cli("bulk", "retry", "--customer", customer, "--status", "NEEDS_ATTENTION", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 changed, 0 skipped, 0 failed" in done.stdout
    for order_id in orders:
        order = saga.wait_for_status(order_id, "FAILED", timeout=180)
        assert order["reason"] == "SHIPPING_FAILED"


def test_a_bulk_cancel_of_waiting_orders_through_the_api_confirms_its_count(saga, ids):
    customer = ids("c")
    orders = place_many(saga, ids, customer, 3, LARGE)
    for order_id in orders:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    api = saga.orders()
    request = pb.BulkActionRequest(action="cancel", filter=pb.OrderFilter(customer_id=customer), operator="e2e",
                                   note="the customer called", dry_run=True)
    assert api.StartBulkAction(request, timeout=60).selected == 3
    request.dry_run, request.confirm_count = False, 2
    with pytest.raises(grpc.RpcError) as refused:
        api.StartBulkAction(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "3 orders" in refused.value.details()
    request.confirm_count = 3
    bulk_id = api.StartBulkAction(request, timeout=60).bulk_id
    status = wait_until(lambda: (b := api.GetBulkAction(pb.GetBulkActionRequest(bulk_id=bulk_id), timeout=30))
                        .state == "COMPLETED" and b, "the bulk cancel ends")
    assert (status.done, status.changed) == (3, 3)
    for order_id in orders:
        assert saga.wait_for_status(order_id, "CANCELLED")["status"] == "CANCELLED"
    assert saga.get_credit(customer).held_cents == 0


# ---- dead letters ------------------------------------------------------------------------------------

def test_dead_letters_are_listed_with_reasons_and_sent_back_once_the_cause_is_fixed(saga, cli, ids):
    order_id, marker = ids("o"), ids("malformed")
    # An approval that came before its order existed, and one that can never be read.
    saga.approve(order_id, approver="early-bird")
    saga.publish(APPROVALS_TOPIC, json.dumps({"order_id": order_id, "decision": "maybe", "note": marker}).encode())
    letters = wait_until(lambda: (found := json.loads(cli("deadletters", "list", "--order", order_id,
                                                          "--json").stdout)) and len(found) >= 2 and found,
                         "both approvals are dead-lettered")
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons[0].startswith("MALFORMED") and "decision" in reasons[0]
    assert reasons[1].startswith("NOT_FOUND")

    # The order exists now, and waits: the early approval goes back, once, and approves it.
    sku = ids("sku")
    saga.set_stock(sku, 5)
    saga.place(order_id, ids("c"), [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL")
    preview = cli("deadletters", "redrive", "--order", order_id, "--all", "--dry-run")
    assert preview.returncode == 0 and preview.stdout.startswith("2 dead letters would be sent back")
    sent = cli("deadletters", "redrive", "--order", order_id, "--all", "--yes")
    assert sent.returncode == 0 and "2 of 2 sent back" in sent.stdout, sent.stdout + sent.stderr
    redrive_id = sent.stdout.rsplit("Redrive ", 1)[1].split(":", 1)[0]
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert any("early-bird" in e["detail"] for e in order["timeline"])
    # The malformed one is still malformed: back in the dead letters, with its reason and the redrive.
    again = wait_until(lambda: [letter for letter in json.loads(cli("deadletters", "list", "--order", order_id,
                                                                     "--json").stdout)
                                if letter["redriven_by"] == redrive_id], "the malformed approval comes back")
    assert [letter["reason"][:9] for letter in again] == ["MALFORMED"]


def test_an_invalid_order_request_sent_back_is_dead_lettered_again_with_its_reason(saga, cli, ids):
    order_id = ids("o")
    saga.publish(REQUESTS_TOPIC, json.dumps({"order_id": order_id, "customer_id": "c",
                                             "items": [{"sku": "a", "quantity": 0, "unit_price_cents": 1}]}).encode())
    (letter,) = wait_until(lambda: json.loads(cli("deadletters", "list", "--kind", "requests", "--order", order_id,
                                                  "--json").stdout), "the request is dead-lettered")
    assert "items.0.quantity" in letter["reason"]
    sent = cli("deadletters", "redrive", "--id", letter["id"], "--yes")
    assert sent.returncode == 0, sent.stderr
    back = wait_until(lambda: [x for x in json.loads(cli("deadletters", "list", "--kind", "requests", "--order",
                                                         order_id, "--json").stdout) if x["redriven_by"]],
                      "the request comes back")
    assert "items.0.quantity" in back[0]["reason"]
    assert saga.get(order_id) is None
    missing = cli("deadletters", "redrive", "--id", "js:999999999", "--yes")
    assert missing.returncode == 2 and "no such dead letter" in missing.stderr


# ---- stuck sagas ---------------------------------------------------------------------------------------

def test_an_order_whose_saga_makes_no_progress_is_listed_as_stuck_with_the_reason(saga, cli, ids):
    """The session stack counts an order stuck after ORDERSAGA_STUCK_AFTER_S (tests/conftest.py)."""
    customer = ids("c")
    saga.set_faults("shipping-service", delay_seconds=12, methods=("CreateShipment",))
    try:
        (order_id,) = place_many(saga, ids, customer, 1, SMALL)
        saga.wait_for_status(order_id, "SHIPPING")
        stuck = wait_until(lambda: json.loads(cli("list", "--stuck", "--customer", customer, "--json").stdout)
                           ["orders"], "the order shows as stuck", timeout=60)
    finally:
        saga.clear_faults("shipping-service")
    assert stuck[0]["order_id"] == order_id and stuck[0]["stuck_reason"].startswith("NO_PROGRESS: SHIPPING since")
    assert "workflow RUNNING" in stuck[0]["stuck_reason"]
    saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    assert json.loads(cli("list", "--stuck", "--customer", customer, "--json").stdout)["orders"] == []
