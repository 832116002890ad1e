"""One driver for the faults that hold a part of the stack for a while (a paused process, a
partitioned or resetting hop): per disruption, three orders of its own are under way when it
begins, one just placed, one waiting for approval whose decision is published during it, one
that unwinds (a line out of stock) so undo calls meet it. The disruptions follow one another
without waiting for their orders; `Verdict.check` then judges them all."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tests.helpers.verdict import LogWindow, Verdict, patient

SMALL, LARGE = 1_000, 150_000
# What a disruption may legitimately cost an order: a step that timed out (it is undone). Never
# a business answer it did not earn, nor an approval timeout when its decision came in time.
TECHNICAL = {"FAILED INVENTORY_UNAVAILABLE", "FAILED PAYMENT_UNAVAILABLE", "FAILED SHIPPING_FAILED"}
TROUBLE = r"(warn|error|fail|timeout|timed out|refused|unavailable|deadline|disconnect|lost|closed|unhealthy|EOF|reset)"


@dataclass
class Disruption:
    name: str  # e.g. "payment-service paused", "order-service-daprd>store partitioned"
    short: str  # for the orders' ids
    begin: Callable[[], object]  # returns what `end` needs
    end: Callable[[object], None]
    seconds: float
    aliases: str  # a regex: how a log line would name what is disrupted
    own_log: str = ""  # the log of the disrupted process itself, not a witness
    via: str = "inventory-service"  # a sidecar to publish the decision through, not the disrupted one


def run(verdict: Verdict, disruptions: list[Disruption]) -> None:
    client = verdict.client
    waiting = {}
    for disruption in disruptions:  # parked at the gate beforehand: their decisions come mid-way
        order = verdict.order(f"{disruption.short}-approved", [(1, LARGE)],
                              note=f"approved during: {disruption.name}", allowed={"COMPLETED"} | TECHNICAL)
        verdict.place(order)
        waiting[disruption.name] = order
    for order in waiting.values():
        patient(lambda order=order: client.wait_for_status(order.order_id, "AWAITING_APPROVAL", timeout=30))

    deciders = []
    for disruption in disruptions:
        plain = verdict.order(f"{disruption.short}-plain", [(1, SMALL)], note=f"placed as it began: {disruption.name}",
                              allowed={"COMPLETED"} | TECHNICAL)
        unwinding = verdict.order(f"{disruption.short}-short", [(1, SMALL), (1, SMALL)], stock=1,
                                  note=f"a line short, as it began: {disruption.name}",
                                  allowed={"FAILED OUT_OF_STOCK"} | TECHNICAL)
        patient(lambda: client.set_stock(unwinding.items[1][0], 0))
        unwinding.stock[unwinding.items[1][0]] = 0
        verdict.place(plain)
        verdict.place(unwinding)

        window = LogWindow(verdict.stack.run_dir)
        handle = disruption.begin()
        verdict.fault(disruption.name)
        try:
            order = waiting[disruption.name]
            decider = threading.Thread(target=lambda order=order, via=disruption.via: patient(
                lambda: client.approve(order.order_id, approver="disruption", via=via),
                patience_s=disruption.seconds + 120))
            decider.start()
            deciders.append(decider)
            time.sleep(disruption.seconds)
        finally:
            disruption.end(handle)
        named = witnesses(window, disruption, verdict.tag)
        verdict.named[disruption.name] = bool(named)
        print(f"{disruption.name} for {disruption.seconds}s: {len(named)} log lines name it"
              + (f", e.g. {named[0]}" if named else ""))
    for decider in deciders:
        decider.join(timeout=300)


def witnesses(window: LogWindow, disruption: Disruption, tag: str) -> list[str]:
    """Lines written meanwhile, outside the disrupted process's own log, that report trouble
    and say with what (not counting the scenario's own ids, which name their targets)."""
    alias = disruption.aliases
    lines = window.lines(rf"{TROUBLE}.*({alias})|({alias}).*{TROUBLE}", ignoring=tag)
    own = {"toxiproxy", disruption.own_log}  # the fault's own tools and victim are no witnesses
    return [line for line in lines if line.split(":", 1)[0] not in own]


def app_of(process: str) -> str:
    """`payment-service-2-daprd` -> `payment-service`."""
    return re.sub(r"(-\d+)?(-daprd)?$", "", process)


STEPS_OF = {"inventory-service": "reserve|release|commit", "payment-service": "authorize|capture|void|refund",
            "shipping-service": "ship|cancel shipment", "order-service": "order-service"}


def live_via(process: str) -> str:
    """A sidecar to publish through that is not `process`'s."""
    return next(app for app in ("inventory-service", "shipping-service") if app_of(process) != app)
