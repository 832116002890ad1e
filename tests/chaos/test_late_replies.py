"""Late replies at every step and every undo: the service does the work after the saga gave up on
the call (a delay before the work, past the step timeout), or does it at once and answers after
the deadline (a delay after the work). For reserve, authorize, capture, ship and commit, and for
each undo (release, void, refund, cancel shipment: the shipment fails, so the saga unwinds
through all of them). Plus late calls that land between two undos, the issue's money hole: a
capture that times out is undone by a refund, then the hold by a void; a capture that lands
between the two left a FAILED order charged. Once deterministically (the void is held until the
capture has landed), and as the issue found it from the CLI (the capture held just past the step
timeout: 0.04 to 0.6 s more, one order each).

One order per case, all at once, each faulted by its own rules (apphost/faults.py, keyed by its
idempotency keys): the first call of the step is late, a repeat meets no fault. On both
profiles. Every order must end (a NEEDS_ATTENTION one is retried once its faults are gone), with
the ending its case allows, the invariants held, one terminal event, and order-service's log
naming the step that timed out."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import pytest

from apphost import faults_pb2
from tests.chaos.conftest import STEP_TIMEOUT_S, on_both_profiles
from tests.helpers.verdict import LogWindow, Verdict

LATE = STEP_TIMEOUT_S + 2  # well past the step timeout
SERVICES = ("inventory-service", "payment-service", "shipping-service")


@dataclass(frozen=True)
class Late:
    name: str
    service: str
    method: str
    step: str  # as order-service logs it: order=... step=<step> attempt=... outcome=TIMEOUT
    ending: str  # what the order ends as
    undo: bool = False  # an undo: the shipment fails (for good), so the saga unwinds through it


STEPS = [
    Late("reserve", "inventory-service", "ReserveLines", "reserve", "FAILED INVENTORY_UNAVAILABLE"),
    Late("authorize", "payment-service", "Authorize", "authorize", "FAILED PAYMENT_UNAVAILABLE"),
    Late("capture", "payment-service", "Capture", "capture", "FAILED PAYMENT_UNAVAILABLE"),
    Late("ship", "shipping-service", "CreateShipment", "ship", "FAILED SHIPPING_FAILED"),
    # The goods are on their way: nothing to undo; NEEDS_ATTENTION, and the retry completes it.
    Late("commit", "inventory-service", "CommitLines", "commit", "COMPLETED"),
    Late("cancel-shipment", "shipping-service", "CancelShipment", "cancel shipment", "FAILED SHIPPING_FAILED",
         undo=True),
    Late("refund", "payment-service", "Refund", "refund", "FAILED SHIPPING_FAILED", undo=True),
    Late("void", "payment-service", "Void", "void", "FAILED SHIPPING_FAILED", undo=True),
    Late("release", "inventory-service", "ReleaseLines", "release", "FAILED SHIPPING_FAILED", undo=True),
]
SWEEP = [0.04, 0.1, 0.2, 0.3, 0.45, 0.6]  # the CLI finding: a capture held just past the timeout


def rule(order, methods, **faults) -> faults_pb2.FaultRule:
    return faults_pb2.FaultRule(key_prefix=order.key(), methods=list(methods), **faults)


@pytest.mark.timeout(900)
def test_late_replies_at_every_step_and_undo(fault_stacks, tally, measured):
    on_both_profiles(fault_stacks, lambda stack, client: late_replies(stack, client, tally, measured))


def late_replies(fault_stack, fault_client, tally, measured) -> list[str]:
    profile = fault_stack.state().profile
    verdict = Verdict(fault_stack, fault_client, "late replies", tag=f"late-{profile[:4]}")
    rules: dict[str, list] = defaultdict(list)
    expect_timeout: list[tuple[str, str]] = []  # (order id, step) that must be logged as TIMEOUT

    for case in STEPS:
        for when in ("work", "answer"):
            order = verdict.order(f"{case.name}-{when}", [(1, 1_000)], note=f"late {when} of {case.method}",
                                  allowed={case.ending})
            delay = {"delay_seconds": LATE} if when == "work" else {"delay_after_seconds": LATE}
            rules[case.service].append(rule(order, [case.method], times=1, **delay))
            if case.undo:
                rules["shipping-service"].append(rule(order, ["CreateShipment"], error_rate=1.0))
            verdict.fault(f"{case.method} answered {LATE}s late ({when})")
            expect_timeout.append((order.order_id, case.step))

    # Between two undos: the capture lands after the refund and before the void.
    hole = verdict.order("capture-between-refund-and-void", [(1, 1_000)],
                         note=f"capture done at {STEP_TIMEOUT_S + 1.5}s, void held 2.5s",
                         allowed={"FAILED PAYMENT_UNAVAILABLE"})
    rules["payment-service"] += [rule(hole, ["Capture"], delay_seconds=STEP_TIMEOUT_S + 1.5, times=1),
                                 rule(hole, ["Void"], delay_seconds=2.5, times=1)]
    verdict.fault("Capture done after its timeout, between the refund and the held void")
    expect_timeout.append((hole.order_id, "capture"))
    for extra in SWEEP:
        order = verdict.order(f"capture-plus-{extra:g}", [(1, 1_000)],
                              note=f"capture held {STEP_TIMEOUT_S + extra:g}s (timeout {STEP_TIMEOUT_S}s)",
                              allowed={"FAILED PAYMENT_UNAVAILABLE", "COMPLETED"})
        rules["payment-service"].append(rule(order, ["Capture"], delay_seconds=STEP_TIMEOUT_S + extra, times=1))
        verdict.fault(f"Capture done {extra:g}s after its timeout")
        expect_timeout.append((order.order_id, "capture"))

    window = LogWindow(fault_stack.run_dir)
    started = time.monotonic()
    for service in SERVICES:
        fault_client.set_faults(service, rules=rules[service])
    try:
        for order in verdict.orders.values():
            verdict.place(order)
        verdict.wait_all(bound_s=240)
    finally:
        for service in SERVICES:
            fault_client.clear_faults(service)
    time.sleep(LATE + 1)  # every held call has landed
    violations = verdict.check(bound_s=240)

    for order_id, step in expect_timeout:
        named = window.lines(rf"order={order_id} step={step} attempt=\d+ outcome=(?!ok)")  # TIMEOUT, or an error
        verdict.named[f"{order_id} {step}"] = bool(named)
        if not named:
            violations.append(f"{order_id}: no log line says its {step} failed (timed out)")
    tally.add(f"late replies ({profile})", verdict, violations)
    measured(f"late replies on {profile}: {len(verdict.faults)} faults, {len(verdict.orders)} orders, "
             f"{len(violations)} violations, in {time.monotonic() - started:.0f}s")
    return violations
