"""Orders held at known places while something is killed, and what must hold afterwards."""

from __future__ import annotations

import collections
import json
import statistics
import threading
import time

from order_service.topics import EVENTS_TOPIC
from ordersaga.client import TERMINAL, SagaClient
from ordersaga.eventfeed import feed_for

SMALL = 1_000  # cents
LARGE = 150_000  # cents: above the approval threshold


class Placer(threading.Thread):
    """Places orders one after another, each retried while the stack cannot take it (a store or
    broker that is down refuses a new order until it is back): what a patient client does."""

    def __init__(self, saga: SagaClient, orders: list[tuple[str, str, list]], every_s: float = 0.3,
                 patience_s: float = 120):
        super().__init__(daemon=True)
        self.saga, self.orders, self.every_s, self.patience_s = saga, orders, every_s, patience_s
        self.refusals = 0
        self.errors: list[Exception] = []

    def run(self) -> None:
        for order_id, customer, items in self.orders:
            time.sleep(self.every_s)  # paced, so placements go on before, during and after the fault
            deadline = time.monotonic() + self.patience_s
            while True:
                try:
                    self.saga.place(order_id, customer, items)
                    break
                except Exception as error:  # noqa: BLE001 - counted, retried, reported when it persists
                    self.refusals += 1
                    if time.monotonic() > deadline:
                        self.errors.append(error)
                        break
                    time.sleep(0.5)


def wait_terminal(saga: SagaClient, order_ids: list[str], since: float, bound_s: float = 240) -> dict[str, float]:
    """Seconds from `since` until each order was seen terminal."""
    finished: dict[str, float] = {}
    deadline = time.monotonic() + bound_s
    while len(finished) < len(order_ids) and time.monotonic() < deadline:
        for order_id in order_ids:
            if order_id not in finished:
                try:
                    order = saga.get(order_id)
                except Exception:  # noqa: BLE001 - a sidecar in the middle of a takeover
                    continue
                if order and order["status"] in TERMINAL:
                    finished[order_id] = time.monotonic() - since
        time.sleep(0.2)
    missing = sorted(set(order_ids) - set(finished))
    assert not missing, f"not terminal {bound_s}s after the fault: {missing}"
    return finished


def spread(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.1f}s, max {max(seconds):.1f}s"


def check_events(stack, orders: dict[str, dict], waited: set[str] = frozenset()) -> int:
    """Every order's lifecycle events reached the broker: `placed`, an `approval_requested` for
    those that waited, and exactly one terminal event. A copy of an event (the same stable id
    twice, an activity retried across the fault) is allowed: consumers drop it by its id.
    Returns the number of such copies."""
    ids = set(orders)
    bodies = feed_for(stack.state()).read_all(
        EVENTS_TOPIC, lambda body: any(f'"{order_id}"' in body for order_id in ids), count=2 * len(ids), timeout=60)
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for body in bodies:
        event = json.loads(body)
        seen[event["data"]["order_id"]][event["id"]] += 1
    copies = 0
    for order_id, order in orders.items():
        types = {event_id.rsplit(".", 1)[1] for event_id in seen[order_id]}
        terminal = types & {"completed", "failed", "cancelled", "needs_attention"}
        assert "placed" in types, f"{order_id}: no placed event ({sorted(types)})"
        assert terminal == {order["status"].lower()}, f"{order_id} is {order['status']}, events {sorted(types)}"
        if order_id in waited:
            assert "approval_requested" in types, f"{order_id}: no approval_requested event"
        copies += sum(n - 1 for n in seen[order_id].values())
    return copies

