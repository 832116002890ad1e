"""Random operation histories on the real stack, checked against a simple model (Jepsen's way).

A history is a seeded sequence of operations: place, the same place again, other content under
an existing id, approve, reject, a decision repeated or arriving late, cancel, faults on a
service (errors and delay, cleared a few operations later), SIGKILL and restart of a random
process, and pauses that let sagas move. With `fault_kinds` (on the chaos suite's proxied fault
stacks, tests/chaos/test_fault_histories.py) also the new kinds of fault: a late reply to one
step or undo of the next order (the work done after its step timeout, or answered after it), a
process frozen (SIGSTOP) for a while, a network hop partitioned or resetting for a while. The
model remembers what was asked and when; after the history every order must end, and its ending
must be one the model allows (`Model.allowed`), the invariants must hold
(tests/helpers/invariants.py), and every order's lifecycle events on `order-events` must be
there once per stable id: nothing lost, nothing published twice.

The same seed gives the same operations (not the same timing: the stack runs in real time).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

import grpc

from apphost import faults_pb2
from order_service import orders_pb2 as pb
from order_service.topics import EVENTS_TOPIC
from ordersaga.client import TERMINAL, SagaClient
from ordersaga.eventfeed import feed_for
from ordersaga.stack import pause, toxiproxy
from tests.conftest import APPROVAL_TIMEOUT_S
from tests.helpers.invariants import check_invariants

KILL_TARGETS = [
    "order-service", "order-service-daprd", "inventory-service", "inventory-service-daprd",
    "payment-service", "payment-service-daprd", "shipping-service", "shipping-service-daprd",
    "nats", "scheduler", "placement",
]
SERVICES = ["inventory-service", "payment-service", "shipping-service"]
SMALL, LARGE = 1_000, 150_000  # unit prices in cents: LARGE makes any order need approval
STOCK = 8
RICH_CREDIT, POOR_CREDIT = 10**9, 300_000  # the poor customer's large orders can be declined
TERMINAL_BOUND_S = 300
# Operations and how often they come.
WEIGHTS = {"place": 6, "place_again": 2, "place_other": 1, "approve": 3, "reject": 2, "decide_again": 1,
           "cancel": 2, "fault": 1, "kill": 1, "pause": 2}
# The new kinds of fault, with `fault_kinds`.
FAULT_KIND_WEIGHTS = {"late": 2, "freeze": 1, "partition": 1, "reset": 1}
# A late reply: (service, method) of a step or an undo; its next order's call answers late.
LATE_CALLS = [("inventory-service", "ReserveLines"), ("inventory-service", "ReleaseLines"),
              ("inventory-service", "CommitLines"), ("payment-service", "Authorize"), ("payment-service", "Capture"),
              ("payment-service", "Void"), ("payment-service", "Refund"), ("shipping-service", "CreateShipment"),
              ("shipping-service", "CancelShipment")]
NOT_TARGETS = {"toxiproxy", "zipkin", "console"}
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Order:
    order_id: str
    customer: str
    items: list[tuple[str, int, int]]
    placed_at: float
    decisions: list[tuple[str, float]] = field(default_factory=list)  # (verdict, published at)
    cancel_accepted: bool = False
    disturbed: bool = False  # a fault or a kill happened while it may have been in flight
    retried: bool = False

    @property
    def large(self) -> bool:
        return sum(q * p for _, q, p in self.items) >= 1000 * 100


@dataclass
class History:
    """One history's operations, what the model knows, and what went wrong."""

    stack: object
    client: SagaClient
    seed: int
    length: int
    rng: random.Random = None
    name: str = ""
    orders: dict[str, Order] = field(default_factory=dict)
    skus: list[str] = field(default_factory=list)
    customers: dict[str, int] = field(default_factory=dict)
    faulted: dict[str, int] = field(default_factory=dict)  # service -> operations left
    log: list[str] = field(default_factory=list)
    operations: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # operations by kind
    fault_kinds: bool = False  # also late replies, frozen processes, partitions and resets
    approval_timeout_s: float = APPROVAL_TIMEOUT_S
    step_timeout_s: float = 15
    global_faults: dict[str, tuple[float, float]] = field(default_factory=dict)  # service -> (error rate, delay)
    rules: dict[str, list] = field(default_factory=dict)  # service -> late-reply rules of its next orders

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.name = f"h{self.seed}-{self.rng.randrange(16**6):06x}"
        self.weights = dict(WEIGHTS, **(FAULT_KIND_WEIGHTS if self.fault_kinds else {}))
        # Every process of the stack may be killed or frozen (the proxies are the test's tool).
        # (The embedded stack's processes are KILL_TARGETS: their order is kept, so a seed picks
        # the same targets as it did before other stacks ran histories.)
        processes = {n for n in self.stack.state().processes if n not in NOT_TARGETS}
        self.targets = KILL_TARGETS if processes == set(KILL_TARGETS) else sorted(processes)
        self.skus = [f"{self.name}-sku{n}" for n in range(2)]
        self.customers = {f"{self.name}-rich": RICH_CREDIT, f"{self.name}-poor": POOR_CREDIT}

    # ---- running ----------------------------------------------------------------------------

    def run(self) -> list[str]:
        """Runs the history and checks it; the violations found (empty: it agrees with the model)."""
        for sku in self.skus:
            self.client.set_stock(sku, STOCK)
        for customer, limit in self.customers.items():
            self.client.set_credit(customer, limit)
        violations = []
        for _ in range(self.length):
            operation = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
            if operation != "place" and not self.orders:
                operation = "place"
            try:
                self.step(operation)
            except Violation as violation:
                violations.append(str(violation))
            self.operations += 1
            self._age_faults()
        return violations + self.settle_and_check()

    def step(self, operation: str) -> None:
        self.counts[operation] = self.counts.get(operation, 0) + 1
        getattr(self, f"op_{operation}")()

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _pick(self) -> Order:
        return self.orders[self.rng.choice(sorted(self.orders))]

    def _disturb(self) -> None:
        for order in self.orders.values():
            order.disturbed = True

    # ---- operations -------------------------------------------------------------------------

    def op_place(self) -> None:
        order_id = f"{self.name}-o{len(self.orders)}"
        lines = self.rng.sample(self.skus, self.rng.choice([1, 1, 2]))
        price = self.rng.choice([SMALL, SMALL, LARGE])
        items = [(sku, self.rng.randint(1, 3), price) for sku in lines]
        customer = self.rng.choice(sorted(self.customers))
        code, details = self._place(order_id, customer, items)
        self.note(f"place {order_id} {customer} {items} -> {code.name} {details}")
        if code != grpc.StatusCode.OK:
            raise Violation(f"place {order_id}: a new valid order was refused: {code.name} {details}")
        self.orders[order_id] = Order(order_id, customer, items, time.monotonic(),
                                      disturbed=bool(self.faulted) or any(
                                          rule.key_prefix == f"{order_id}:" for rules in self.rules.values()
                                          for rule in rules))

    def op_place_again(self) -> None:
        order = self._pick()
        code, details = self._place(order.order_id, order.customer, order.items)
        self.note(f"place again {order.order_id} -> {code.name}")
        if code != grpc.StatusCode.OK:
            raise Violation(f"place again {order.order_id}: the same content must be accepted: {code.name} {details}")

    def op_place_other(self) -> None:
        order = self._pick()
        sku, quantity, price = order.items[0]
        code, details = self._place(order.order_id, order.customer, [(sku, quantity + 1, price)])
        self.note(f"place other content {order.order_id} -> {code.name}")
        if code != grpc.StatusCode.ALREADY_EXISTS:
            raise Violation(f"other content under {order.order_id} answered {code.name}, not ALREADY_EXISTS")

    def op_approve(self) -> None:
        self._decide(self._pick(), "approve")

    def op_reject(self) -> None:
        self._decide(self._pick(), "reject")

    def op_decide_again(self) -> None:
        decided = [o for o in self.orders.values() if o.decisions]
        if decided:
            order = self.rng.choice(decided)
            self._decide(order, order.decisions[0][0])

    def op_cancel(self) -> None:
        order = self._pick()
        code, details = self._retrying(lambda: self.client.orders().CancelOrder(
            pb.CancelOrderRequest(order_id=order.order_id, reason="history"), timeout=30))
        self.note(f"cancel {order.order_id} -> {code.name} {details}")
        if code == grpc.StatusCode.OK:
            order.cancel_accepted = True
        elif code != grpc.StatusCode.FAILED_PRECONDITION:
            raise Violation(f"cancel {order.order_id} answered {code.name}: {details}")

    def op_fault(self) -> None:
        service = self.rng.choice(SERVICES)
        error_rate, delay = self.rng.choice([0.2, 0.5]), self.rng.choice([0.0, 0.5, 2.0])
        self.global_faults[service] = (error_rate, delay)
        self._apply_faults(service)
        self.faulted[service] = self.rng.randint(1, 3)
        self._disturb()
        self.note(f"faults on {service}: error rate {error_rate}, delay {delay}s")

    def op_kill(self) -> None:
        target = self.rng.choice(self.targets)
        self.note(f"kill -9 {target}")
        self._disturb()
        self.stack.kill(target)
        time.sleep(self.rng.choice([0.2, 1.0, 3.0]))
        self.stack.up(timeout=120)
        if target in self.faulted:  # a restarted service starts without faults
            del self.faulted[target]
        if target in SERVICES and (self.rules.get(target) or target in self.global_faults):
            self._apply_faults(target)  # ... so the ones still due are set again
        self.note(f"restarted {target}")

    def op_pause(self) -> None:
        time.sleep(self.rng.choice([0.5, 1.0, 3.0]))

    # ---- the new kinds of fault (fault_kinds) ------------------------------------------------

    def op_late(self) -> None:
        """The next order's call to one step or undo answers after its step timeout: the work
        done late (after the caller gave up) or done at once and answered late."""
        service, method = self.rng.choice(LATE_CALLS)
        order_id = f"{self.name}-o{len(self.orders)}"
        when = self.rng.choice(["work", "answer"])
        late = self.step_timeout_s + self.rng.choice([0.05, 0.5, 2.0])
        delay = {"delay_seconds": late} if when == "work" else {"delay_after_seconds": late}
        self.rules.setdefault(service, []).append(faults_pb2.FaultRule(key_prefix=f"{order_id}:", methods=[method],
                                                                       times=1, **delay))
        self._apply_faults(service)
        self.note(f"late {when} of {method} ({late:.2f}s) for the next order, {order_id}")
        self.op_place()

    def op_freeze(self) -> None:
        target = self.rng.choice(self.targets)
        seconds = self.rng.choice([2.0, 6.0, self.step_timeout_s + 3])
        self._disturb()
        record = self.stack.state().processes[target]
        self.note(f"SIGSTOP {target} for {seconds:g}s")
        watchdog = pause.pause(record, resume_after_s=seconds + 60)
        try:
            time.sleep(seconds)
        finally:
            pause.resume(record, watchdog)
        self.note(f"SIGCONT {target}")

    def op_partition(self) -> None:
        self._on_hop("partition", self.rng.choice([2.0, 6.0, self.step_timeout_s + 3]))

    def op_reset(self) -> None:
        self._on_hop("reset", self.rng.choice([0.5, 2.0]))

    def _on_hop(self, mode: str, seconds: float) -> None:
        proxies = toxiproxy.Toxiproxy.of(self.stack.state())
        hop = self.rng.choice(sorted(proxies.proxies()))
        self._disturb()
        self.note(f"{mode} {hop} for {seconds:g}s")
        getattr(proxies, mode)(hop)
        try:
            time.sleep(seconds)
        finally:
            proxies.heal(hop)
        self.note(f"healed {hop}")
    # ---- helpers ----------------------------------------------------------------------------

    def _place(self, order_id: str, customer: str, items) -> tuple[grpc.StatusCode, str]:
        request = pb.PlaceOrderRequest(order_id=order_id, customer_id=customer, items=[
            pb.LineItem(sku=s, quantity=q, unit_price_cents=p) for s, q, p in items])
        return self._retrying(lambda: self.client.orders().PlaceOrder(request, timeout=30))

    def _retrying(self, call, bound_s: float = 90) -> tuple[grpc.StatusCode, str]:
        """A client's retry of a call that met a restarting process: the final code and message."""
        deadline = time.monotonic() + bound_s
        while True:
            try:
                call()
                return grpc.StatusCode.OK, ""
            except grpc.RpcError as error:
                if error.code() not in TRANSIENT or time.monotonic() > deadline:
                    return error.code(), error.details() or ""
                time.sleep(1)

    def _decide(self, order: Order, verdict: str) -> None:
        via = self.rng.choice(["order-service", *SERVICES])
        deadline = time.monotonic() + 90
        while True:
            try:
                self.client.approve(order.order_id, decision=verdict, approver="history", via=via)
                break
            except OSError as error:  # a sidecar or the broker restarting
                if time.monotonic() > deadline:
                    raise Violation(f"{verdict} of {order.order_id} could not be published: {error}") from None
                time.sleep(1)
        order.decisions.append((verdict, time.monotonic()))
        self.note(f"{verdict} {order.order_id} via {via}")

    def _age_faults(self) -> None:
        for service in list(self.faulted):
            self.faulted[service] -= 1
            if self.faulted[service] <= 0:
                self._clear(service)

    def _clear(self, service: str) -> None:
        """The service's error rate and delay end; late-reply rules of orders still to come stay."""
        self.global_faults.pop(service, None)
        self._apply_faults(service)
        self.faulted.pop(service, None)
        self.note(f"faults on {service} cleared")

    def _apply_faults(self, service: str) -> None:
        error_rate, delay = self.global_faults.get(service, (0.0, 0.0))
        for _ in range(40):
            try:
                self.client.set_faults(service, error_rate=error_rate, delay_seconds=delay,
                                       rules=self.rules.get(service, []))
                return
            except Exception:  # noqa: BLE001 - the service may be restarting
                time.sleep(0.5)

    # ---- the end: settle, then check ----------------------------------------------------------

    def settle_and_check(self) -> list[str]:
        for service in list(self.faulted):
            self._clear(service)
        for order in self.orders.values():  # an order nobody decided would wait for its timeout
            if order.large and not order.decisions:
                self._decide(order, "approve")
        finals = {oid: self.client.wait_for_status(oid, TERMINAL, timeout=TERMINAL_BOUND_S) for oid in self.orders}
        if self.rules:  # late replies: every held call lands before the retries and the checks
            self.rules = {}
            for service in SERVICES:
                self._apply_faults(service)
            time.sleep(self.step_timeout_s + 3)
        for order_id, final in finals.items():
            if final["status"] == "NEEDS_ATTENTION":  # its cause (faults) is gone: a retry finishes it
                self.orders[order_id].retried = True
                code, details = self._retrying(lambda: self.client.orders().RetryOrder(
                    pb.RetryOrderRequest(order_id=order_id, operator="history"), timeout=30))
                self.note(f"retry {order_id} -> {code.name} {details}")
        initial = {sku: STOCK for sku in self.skus}
        violations: list[str] = []
        try:
            finals = check_invariants(self.client, initial, sorted(self.orders), bound_s=TERMINAL_BOUND_S)
        except AssertionError as error:
            return [f"invariants: {error}"]
        for order_id, final in finals.items():
            violations += [f"{order_id}: {problem}" for problem in self.allowed(self.orders[order_id], final)]
        violations += self.check_events(finals)
        return violations

    def allowed(self, order: Order, final: dict) -> list[str]:
        """What the model says about an order's ending: the problems with `final`, if any."""
        status, reason = final["status"], final.get("reason", "")
        verdicts = {verdict for verdict, _ in order.decisions}
        problems = []
        if status not in {"COMPLETED", "FAILED", "CANCELLED"}:
            problems.append(f"ended {status} although its cause was cleared and it was retried")
        if status == "CANCELLED" and not order.cancel_accepted:
            problems.append("CANCELLED without an accepted cancel")
        if status == "COMPLETED" and order.cancel_accepted:
            problems.append("COMPLETED after a cancel was accepted")
        if status == "COMPLETED" and order.large and "approve" not in verdicts:
            problems.append("COMPLETED without approval")
        if reason == "APPROVAL_REJECTED" and (not order.large or "reject" not in verdicts):
            problems.append("APPROVAL_REJECTED without a reject")
        if reason == "APPROVAL_TIMEOUT":
            first = min((at for _, at in order.decisions), default=float("inf"))
            in_time = first - order.placed_at < self.approval_timeout_s - 15
            if not order.large or (in_time and not order.disturbed):
                problems.append("APPROVAL_TIMEOUT although a decision came in time")
        if reason == "PAYMENT_DECLINED" and order.customer.endswith("-rich"):
            problems.append("PAYMENT_DECLINED for a customer with ample credit")
        if reason in {"INVENTORY_UNAVAILABLE", "PAYMENT_UNAVAILABLE", "SHIPPING_FAILED"} and not order.disturbed:
            problems.append(f"{reason} with no fault and no kill")
        places = [e for e in final["timeline"] if e["step"] == "place"]
        if len(places) != 1:
            problems.append(f"{len(places)} place entries on the timeline: a second saga?")
        return problems

    def check_events(self, finals: dict[str, dict]) -> list[str]:
        """Every order's lifecycle events, once per stable id: placed (unless a cancel came
        first) and one terminal event that says how it ended."""
        bodies = feed_for(self.stack.state()).read_all(
            EVENTS_TOPIC, lambda body: f'"{self.name}-o' in body, len(finals), timeout=60)
        seen: dict[str, dict] = {}
        problems = []
        for body in bodies:
            envelope = json.loads(body)
            data = envelope["data"] if isinstance(envelope["data"], dict) else json.loads(envelope["data"])
            expected_id = f"{data['order_id']}.{data['type']}"
            if envelope["id"] != expected_id:
                problems.append(f"event {envelope['id']} is not under its stable id {expected_id}")
            if envelope["id"] in seen and seen[envelope["id"]] != data:
                problems.append(f"two different events under the id {envelope['id']}")
            seen[envelope["id"]] = data
        for order_id, final in finals.items():
            types = {data["type"] for data in seen.values() if data["order_id"] == order_id}
            ending = final["status"].lower()
            if ending not in types:
                problems.append(f"{order_id}: no '{ending}' event on {EVENTS_TOPIC} (saw {sorted(types)})")
            elif seen[f"{order_id}.{ending}"]["status"] != final["status"]:
                problems.append(f"{order_id}: the '{ending}' event says {seen[f'{order_id}.{ending}']['status']}")
            others = types & {"completed", "failed", "cancelled"} - {ending}
            if others:
                problems.append(f"{order_id}: ended {final['status']} but also announced {sorted(others)}")
            if "placed" not in types and not self.orders[order_id].cancel_accepted:
                problems.append(f"{order_id}: no 'placed' event")
            if "approval_requested" in types and not self.orders[order_id].large:
                problems.append(f"{order_id}: approval requested for an order below the threshold")
        return problems


class Violation(AssertionError):
    """An operation answered what the contract does not allow."""
