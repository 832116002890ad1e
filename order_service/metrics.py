"""order-service's Prometheus metrics (served by `up --observe`, see apphost.observability).

Where each number comes from, and why there:
- status changes: `OrderActor._save`, which sees every change of an order's status (the actor
  owns it), so a finished order is counted once, where it finished;
- step latency and compensations: the activities, which run the calls (never the workflow code:
  it is replayed, and would count a step again at every replay);
- dead letters: the intake and approvals subscriptions, as they refuse an event.

The in-flight gauges count the orders whose actors this process hosts, as it saw them change:
with replicas, each process reports its share and `ordersaga top` adds them up. A process that
restarts knows an order again at its next status change (an order parked for approval, not
before its decision).
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from order_service.domain import OrderStatus

ORDERS_PLACED = Counter("ordersaga_orders_placed", "New orders accepted (stored by their actor)")
ORDERS_FINISHED = Counter("ordersaga_orders_finished", "Orders that reached a terminal status, by status and reason",
                          ["status", "reason"])
# Buckets from a fast local call to a slow retried one (the step timeout is 30 s by default).
STEP_SECONDS = Histogram("ordersaga_step_seconds", "One attempt of a saga step (a service call), by step and outcome",
                         ["step", "outcome"],
                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
COMPENSATIONS = Counter("ordersaga_compensations", "Undo calls run by sagas (attempts), by step and outcome",
                        ["step", "outcome"])
DEAD_LETTERS = Counter("ordersaga_dead_letters", "Events refused to a dead-letter topic, by subscription and reason",
                       ["subscription", "reason"])

# The undo steps of the saga's activities (`_guarded`'s step names).
UNDO_STEPS = frozenset({"release", "void", "refund", "cancel shipment"})


class InFlight(Collector):
    """Orders in flight by status (and those waiting for an approval), from the status changes
    this process's actors made; an order leaves when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the actors' event loop writes, the metrics thread reads
        self._status: dict[str, OrderStatus] = {}

    def note(self, order_id: str, previous: OrderStatus | None, status: OrderStatus, reason: str) -> None:
        """The actor saved the order with `status`; `previous` is what it had loaded (None: new)."""
        if previous is None:
            ORDERS_PLACED.inc()
        if status.terminal and previous is not None and not previous.terminal:
            ORDERS_FINISHED.labels(status.value, reason or "").inc()
        with self._lock:
            if status.terminal:
                self._status.pop(order_id, None)
            else:
                self._status[order_id] = status

    def counts(self) -> dict[str, int]:
        with self._lock:
            statuses = list(self._status.values())
        return {s.value: statuses.count(s) for s in OrderStatus if not s.terminal}

    def collect(self):
        counts = self.counts()
        by_status = GaugeMetricFamily("ordersaga_orders_in_flight", "Orders in flight by status (this process's "
                                      "actors)", labels=["status"])
        for status, count in counts.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily("ordersaga_approvals_waiting", "Orders waiting for an approval decision (this "
                                "process's actors)", value=counts[OrderStatus.AWAITING_APPROVAL.value])


IN_FLIGHT = InFlight()
REGISTRY.register(IN_FLIGHT)


def observe_step(step: str, outcome: str, seconds: float) -> None:
    """One attempt of a step, as an activity ran it (`outcome`: ok, a business reason, TIMEOUT,
    or error for a technical failure the saga retries)."""
    STEP_SECONDS.labels(step, outcome).observe(seconds)
    if step in UNDO_STEPS:
        COMPENSATIONS.labels(step, outcome).inc()
