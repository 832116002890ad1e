"""The `ordersaga` CLI against the session's stack: every order and admin verb, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture()
def cli(stack):
    env = dict(os.environ, ORDERSAGA_HOME=str(stack.run_dir))

    def run(*args, timeout=120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ordersaga.cli", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
    return run


def test_place_watch_show_list_with_json(cli, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    assert cli("stock", "set", sku, "5").returncode == 0
    placed = cli("place", "--order-id", order_id, "--customer", customer, "--item", f"{sku}:2:3.25", "--json")
    assert placed.returncode == 0, placed.stderr
    assert json.loads(placed.stdout) == {"order_id": order_id, "status": "PLACED"}

    watched = cli("watch", order_id)
    assert watched.returncode == 0 and "-> COMPLETED" in watched.stdout
    assert f"reserve {sku}" in watched.stdout

    shown = json.loads(cli("show", order_id, "--json").stdout)
    assert shown["status"] == "COMPLETED" and shown["total_cents"] == 650
    assert shown["timeline"][-1]["outcome"] == "COMPLETED"
    listed = json.loads(cli("list", "--status", "completed", "--customer", customer, "--json").stdout)
    assert [o["order_id"] for o in listed["orders"]] == [order_id] and listed["next_page_token"] == ""

    stock = json.loads(cli("stock", "get", sku, "--json").stdout)
    assert stock == {"sku": sku, "on_hand": 3, "reserved": 0, "available": 3}
    credit = json.loads(cli("credit", "get", customer, "--json").stdout)
    assert (credit["customer"], credit["held"], credit["captured"]) == (customer, 0, 6.5)


def test_approve_and_reject_publish_decisions(cli, ids):
    sku = ids("sku")
    cli("stock", "set", sku, "5")
    approved, rejected = ids("o"), ids("o")
    for order_id in (approved, rejected):
        assert cli("place", "--order-id", order_id, "--customer", ids("c"), "--item", f"{sku}:1:1500").returncode == 0
    assert cli("credit", "set", ids("c"), "20000").returncode == 0
    for order_id in (approved, rejected):
        for _ in range(60):
            if json.loads(cli("show", order_id, "--json").stdout)["status"] == "AWAITING_APPROVAL":
                break
    assert cli("approve", approved, "--approver", "carol").returncode == 0
    assert cli("reject", rejected, "--approver", "carol", "--reason", "no budget").returncode == 0
    assert "-> COMPLETED" in cli("watch", approved).stdout
    assert "APPROVAL_REJECTED" in cli("watch", rejected).stdout


def test_a_decision_no_order_waits_for_is_refused_and_not_published(cli, ids, stack):
    """Issue 18's bad input: `approve nope-order` printed 'Published' and exited 0."""
    unknown = cli("approve", "nope-order")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr and "nothing published" in unknown.stderr
    assert "Published" not in unknown.stdout
    sku, small = ids("sku"), ids("o")
    cli("stock", "set", sku, "5")
    assert cli("place", "--order-id", small, "--customer", ids("c"), "--item", f"{sku}:1:2").returncode == 0
    assert "-> COMPLETED" in cli("watch", small).stdout
    ended = cli("reject", small, "--reason", "too late")
    assert ended.returncode == 1 and "not waiting for a decision (it is COMPLETED)" in ended.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("place", "--order-id", "x1", "--customer", "c", "--item", "apple-2-1"), 2, "SKU:QTY:UNIT_PRICE"),
        (("place", "--order-id", "x2", "--customer", "c", "--item", "apple:2:1.001"), 2, "two decimals"),
        (("place", "--order-id", "x3", "--customer", "c", "--item", "apple:0:1"), 1, "items.0.quantity"),
        (("place", "--order-id", "bad id", "--customer", "c", "--item", "apple:1:1"), 1, "order_id"),
        (("show", "never-placed"), 1, "NOT_FOUND"),
        (("cancel", "never-placed"), 1, "NOT_FOUND"),
        (("list", "--status", "SHIPPED"), 2, "--status must be one of"),
        (("faults", "billing", "--error-rate", "1"), 2, "SERVICE must be one of"),
        (("faults", "shipping", "--error-rate", "3"), 1, "error_rate must be between 0 and 1"),
        (("faults", "shipping", "--method", "Nope", "--error-rate", "1"), 1, "unknown methods"),
        (("stock", "set", "apple"), 2, "quantity"),
        (("credit", "set", "bob", "ten"), 2, "AMOUNT must be a number"),
    ],
)
def test_errors_go_to_stderr_with_a_non_zero_exit(cli, args, code, message):
    result = cli(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""


def test_a_cli_without_a_running_stack_says_how_to_start_one(tmp_path):
    env = dict(os.environ, ORDERSAGA_HOME=str(tmp_path / "none"))
    result = subprocess.run([sys.executable, "-m", "ordersaga.cli", "show", "x"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "ordersaga up" in result.stderr


def test_retry_and_close_of_an_order_not_needing_attention_are_refused_on_stderr(cli, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    cli("stock", "set", sku, "5")
    cli("place", "--order-id", order_id, "--customer", customer, "--item", f"{sku}:1:1.00")
    assert cli("watch", order_id).returncode == 0
    for args in (("retry", order_id), ("close", order_id, "--note", "done by hand", "--by", "dora")):
        refused = cli(*args)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith("ordersaga: error: FAILED_PRECONDITION: ")
        assert "only an order that NEEDS_ATTENTION" in refused.stderr
    missing_note = cli("close", order_id)
    assert missing_note.returncode == 2 and "--note" in missing_note.stderr
