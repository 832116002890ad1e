"""DESIGN.md's invariants, checked once every order of a scenario is terminal.

- no stock is reserved, and on hand = initial - quantities of COMPLETED orders, per SKU;
- nothing is held, and captured = totals of COMPLETED orders, per customer (the ledger, not
  the order status, so a double charge shows);
- every order's actor state agrees with its saga, or with the retry that finished it (both
  terminal, same outcome).
"""

from __future__ import annotations

import collections
import json

from ordersaga.client import TERMINAL, SagaClient


def check_invariants(client: SagaClient, initial_stock: dict[str, int], order_ids: list[str],
                     captured_before: dict[str, int] | None = None, bound_s: float = 60) -> dict[str, dict]:
    """Waits (up to `bound_s` per order) until every order is terminal, then checks."""
    orders = {order_id: client.wait_for_status(order_id, TERMINAL, timeout=bound_s) for order_id in order_ids}
    sold: collections.Counter[str] = collections.Counter()
    charged: collections.Counter[str] = collections.Counter()
    customers = set()
    for order_id, order in orders.items():
        request = order["request"]
        customers.add(request["customer_id"])
        if order["status"] == "COMPLETED":
            assert order["tracking_number"], f"{order_id} completed without a tracking number"
            for item in request["items"]:
                sold[item["sku"]] += item["quantity"]
            charged[request["customer_id"]] += sum(i["quantity"] * i["unit_price_cents"] for i in request["items"])
        # The workflow now in charge of the order: its saga, or the retry that finished it.
        instance = order["saga_instance_id"]
        saga_status = client.wait_for_saga(order_id, timeout=bound_s, instance_id=instance)
        assert saga_status == "COMPLETED", f"saga of {order_id} ended {saga_status}, not cleanly"
        saga_state = client.workflow_state(order_id, payloads=True, instance_id=instance)
        assert json.loads(saga_state.serialized_output) == order["status"], (
            f"{order_id}: actor says {order['status']}, saga returned {saga_state.serialized_output}")

    for sku, initial in initial_stock.items():
        stock = client.get_stock(sku)
        assert stock.reserved == 0, f"{sku}: {stock.reserved} still reserved"
        assert stock.on_hand == initial - sold[sku], f"{sku}: on hand {stock.on_hand}, expected {initial - sold[sku]}"

    for customer in customers:
        credit = client.get_credit(customer)
        before = (captured_before or {}).get(customer, 0)
        assert credit.held_cents == 0, f"{customer}: {credit.held_cents} cents still held"
        assert credit.captured_cents - before == charged[customer], (
            f"{customer}: captured {credit.captured_cents - before}, completed orders total {charged[customer]}")
    return orders
