"""What every fault must end with, checked order by order, and counted per fault kind.

A scenario registers its orders (each with a SKU and a customer of its own, so stock and ledger
figures belong to one order) and the faults it injects. Once the faults are gone, `settle`
waits for every order to end, retries the ones that NEED_ATTENTION (their cause is gone, so a
retry must finish them), and `check` collects, without stopping at the first, every violation:

- the order is terminal, and not NEEDS_ATTENTION after a retry;
- its ending is one the scenario allows (`Tracked.allowed`);
- DESIGN.md's invariants for its SKU and customer: nothing reserved or held; on hand and
  captured (from the ledger, so a charge of a failed order shows) match its ending;
- its actor agrees with its saga (or the retry that finished it);
- exactly one terminal event for it on `order-events` (tests/production/scenario.py's rule; a
  retried order announced its NEEDS_ATTENTION first).

Each violation comes with the evidence a person needs: the order's timeline, the ledger and
stock figures, and the order's lines from the stack's logs. `Tally` adds the figures up per fault
kind (faults injected, orders run, violations found) for the summary at the end of the run.
"""

from __future__ import annotations

import collections
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from order_service import orders_pb2 as pb
from order_service.topics import EVENTS_TOPIC
from ordersaga.client import TERMINAL, SagaClient
from ordersaga.eventfeed import feed_for

EVIDENCE: list[tuple[object, list[str]]] = []  # (stack, violations): its logs are kept (tests/chaos/conftest.py)
ENDING_EVENTS = {"completed", "failed", "cancelled", "needs_attention"}


@dataclass
class Tracked:
    order_id: str
    customer: str
    items: list[tuple[str, int, int]]
    stock: dict[str, int]  # initial on hand of each of its SKUs
    note: str  # what the scenario did to it, for the evidence
    allowed: set[str] | None = None  # endings allowed ("COMPLETED", "FAILED PAYMENT_DECLINED", ...); None: any
    retried: bool = False
    refused: bool = False  # its placement was refused: it may be absent (if present, it must end)

    @property
    def total(self) -> int:
        return sum(q * p for _, q, p in self.items)

    def key(self) -> str:
        """The idempotency-key prefix of its calls (for fault rules)."""
        return f"{self.order_id}:"


class Verdict:
    """The orders of one fault kind on one stack, and what they ended with."""

    def __init__(self, stack, client: SagaClient, kind: str, tag: str):
        self.stack, self.client, self.kind = stack, client, kind
        self.tag = f"{tag}-{uuid.uuid4().hex[:6]}"
        self.orders: dict[str, Tracked] = {}
        self.faults: list[str] = []
        self.named: dict[str, bool] = {}  # fault -> whether a log line named what failed
        self.problems: list[str] = []

    def order(self, name: str, items: list[tuple[int, int]], note: str = "", stock: int = 10,
              credit_cents: int | None = None, allowed: set[str] | None = None) -> Tracked:
        """A new order `name` with its own SKU(s) (`items`: (quantity, unit price) per line) and
        customer; stock and credit set, nothing placed yet."""
        order_id = f"{self.tag}-{len(self.orders):02d}-{name}"[:56]  # room for its SKUs' and customer's suffixes
        skus = [f"{order_id}-s{n}" for n in range(len(items))]
        customer = f"{order_id}-c"
        for sku in skus:
            patient(lambda sku=sku: self.client.set_stock(sku, stock))
        if credit_cents is not None:
            patient(lambda: self.client.set_credit(customer, credit_cents))
        tracked = Tracked(order_id, customer, [(sku, q, p) for sku, (q, p) in zip(skus, items)],
                          dict.fromkeys(skus, stock), note or name, allowed)
        self.orders[order_id] = tracked
        return tracked

    def place(self, tracked: Tracked, patience_s: float = 120) -> None:
        """Placed as a patient client would: retried while the stack cannot take it."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                self.client.place(tracked.order_id, tracked.customer, tracked.items)
                return
            except Exception as error:  # noqa: BLE001 - a process that is down or paused answers with errors
                if time.monotonic() > deadline:
                    self.problems.append(f"{tracked.order_id} ({tracked.note}): could not be placed in "
                                         f"{patience_s:.0f}s: {error}")
                    return
                time.sleep(0.5)

    def fault(self, what: str) -> None:
        self.faults.append(what)

    # ---- the end --------------------------------------------------------------------------

    def wait_all(self, bound_s: float = 240) -> dict[str, dict | None]:
        """Waits (up to `bound_s` in all) until every order is terminal; what each one is now.
        No retry: a scenario clears its faults between this and `check`."""
        started = time.monotonic()
        deadline = started + bound_s
        return {oid: self._wait(oid, max(1.0, deadline - time.monotonic()), since=started) for oid in self.orders}

    def settle(self, bound_s: float = 240) -> dict[str, dict]:
        """Every order terminal (as far as it gets within `bound_s`); NEEDS_ATTENTION retried once."""
        finals = self.wait_all(bound_s)
        for order_id, final in finals.items():
            if final and final["status"] == "NEEDS_ATTENTION":
                self.orders[order_id].retried = True
                self._retry(order_id)
        deadline = time.monotonic() + bound_s
        for order_id, final in finals.items():
            if self.orders[order_id].retried:
                finals[order_id] = self._wait(order_id, max(1.0, deadline - time.monotonic()),
                                              not_status="NEEDS_ATTENTION")
        return finals

    def check(self, bound_s: float = 240) -> list[str]:
        """Settles, then every violation found (with its evidence); [] when all is well."""
        finals = self.settle(bound_s)
        violations = list(self.problems)
        events = self._terminal_events([oid for oid, final in finals.items() if final])
        for order_id, tracked in self.orders.items():
            final = finals[order_id]
            found = self._order_problems(tracked, final, events.get(order_id, collections.Counter()), bound_s)
            if found:
                violations.append(self.evidence(tracked, final, found))
        for violation in violations:  # in full (an assertion message is cut short), and kept
            print(f"VIOLATION ({self.kind}) {violation}")
        if violations:
            EVIDENCE.append((self.stack, violations))
        return violations

    def _order_problems(self, tracked: Tracked, final: dict | None, events, bound_s: float) -> list[str]:
        if final is None:
            return [] if tracked.refused else ["it does not exist (never placed?)"]
        status, reason = final["status"], final.get("reason", "")
        if status not in TERMINAL:
            return [f"not terminal after {bound_s:.0f}s: {status} (saga {final.get('saga_runtime_status')})"]
        found = []
        if status == "NEEDS_ATTENTION":
            found.append("still NEEDS_ATTENTION after a retry, with its fault gone")
        ending = f"{status} {reason}".strip()
        if tracked.allowed is not None and status not in tracked.allowed and ending not in tracked.allowed:
            found.append(f"ended {ending}, expected one of {sorted(tracked.allowed)}")
        completed = status == "COMPLETED"
        for sku, initial in tracked.stock.items():
            level = self.client.get_stock(sku)
            sold = sum(q for s, q, _ in tracked.items if s == sku) if completed else 0
            if level.reserved:
                found.append(f"{sku}: {level.reserved} still reserved")
            if level.on_hand != initial - sold:
                found.append(f"{sku}: on hand {level.on_hand}, expected {initial - sold}")
        credit = self.client.get_credit(tracked.customer)
        if credit.held_cents:
            found.append(f"{tracked.customer}: {credit.held_cents} cents still held")
        charged = tracked.total if completed else 0
        if credit.captured_cents != charged:
            found.append(f"{tracked.customer}: captured {credit.captured_cents} cents, expected {charged} "
                         f"(the order is {ending})")
        found += self._saga_problems(tracked.order_id, final, bound_s)
        # One ending announced, the right one. A retried order also announced that it needed
        # attention, before the retry ended it.
        endings = {event_type for event_type in events if event_type in ENDING_EVENTS}
        if endings != {status.lower()} | ({"needs_attention"} if tracked.retried else set()):
            found.append(f"events on {EVENTS_TOPIC}: {dict(events) or 'none'}, expected one '{status.lower()}'"
                         + (" (and a needs_attention before the retry)" if tracked.retried else ""))
        return found

    def _saga_problems(self, order_id: str, final: dict, bound_s: float) -> list[str]:
        instance = final.get("saga_instance_id", "")
        try:
            saga_status = self.client.wait_for_saga(order_id, timeout=min(bound_s, 60), instance_id=instance)
            if saga_status != "COMPLETED":
                return [f"saga {instance} ended {saga_status}, not cleanly"]
            output = self.client.workflow_state(order_id, payloads=True, instance_id=instance)
            if json.loads(output.serialized_output) != final["status"]:
                return [f"actor says {final['status']}, saga {instance} returned {output.serialized_output}"]
        except AssertionError as error:
            return [str(error)]
        return []

    # ---- helpers ----------------------------------------------------------------------------

    def _wait(self, order_id: str, bound_s: float, not_status: str = "", since: float | None = None) -> dict | None:
        started = time.monotonic()
        since = since or started  # a refused order may be absent once this long has passed since
        order = None
        while time.monotonic() < started + bound_s:
            try:
                order = self.client.get(order_id) or order
            except Exception:  # noqa: BLE001 - a sidecar taking over, a store coming back
                pass
            if order and order["status"] in TERMINAL and order["status"] != not_status:
                return order
            if order is None and self.orders[order_id].refused and time.monotonic() > since + 15:
                return None  # refused, and nothing of it was stored
            time.sleep(0.5)
        return order

    def _retry(self, order_id: str) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                self.client.orders().RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator="fault-suite"),
                                                timeout=30)
                return
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        or time.monotonic() > deadline:
                    self.problems.append(f"{order_id}: RetryOrder answered {error.code().name}: {error.details()}")
                    return
                time.sleep(1)

    def _terminal_events(self, order_ids: list[str]) -> dict[str, collections.Counter]:
        """Event types per order on order-events (copies of one stable id counted once)."""
        if not order_ids:
            return {}
        wanted = set(order_ids)
        pattern = re.compile(r'"order_id":\s*"([^"]+)"')
        try:
            bodies = feed_for(self.stack.state()).read_all(
                EVENTS_TOPIC, lambda body: any(m in wanted for m in pattern.findall(body)),
                count=2 * len(wanted), timeout=60)
        except Exception as error:  # noqa: BLE001 - reported, not raised: the other checks still count
            self.problems.append(f"the events on {EVENTS_TOPIC} could not be read: {error}")
            return {}
        ids: dict[str, set[str]] = collections.defaultdict(set)
        for body in bodies:
            envelope = json.loads(body)
            data = envelope["data"] if isinstance(envelope["data"], dict) else json.loads(envelope["data"])
            ids[data["order_id"]].add(envelope["id"])
        return {order_id: collections.Counter(event_id.rsplit(".", 1)[1] for event_id in found)
                for order_id, found in ids.items()}

    def evidence(self, tracked: Tracked, final: dict | None, problems: list[str]) -> str:
        lines = [f"{tracked.order_id} ({tracked.note}): " + "; ".join(problems)]
        try:
            instance = (final or {}).get("saga_instance_id", "")
            workflow = self.client.workflow_state(tracked.order_id, instance_id=instance)
            lines.append(f"  saga: {workflow.runtime_status.name if workflow else 'no such workflow'}"
                         + (f", failure: {workflow.failure_details.message[:200]}"
                            if workflow and workflow.failure_details else ""))
        except Exception as error:  # noqa: BLE001
            lines.append(f"  saga: unknown ({error})")
        if final:
            lines.append("  timeline: " + " | ".join(
                f"{e['step']} {e['outcome']}" + (f" ({e['detail'][:70]})" if e.get("detail") else "")
                for e in final.get("timeline", [])))
        try:
            credit = self.client.get_credit(tracked.customer)
            lines.append(f"  credit {tracked.customer}: held {credit.held_cents}, captured {credit.captured_cents}, "
                         f"order total {tracked.total}")
            for sku in tracked.stock:
                level = self.client.get_stock(sku)
                lines.append(f"  stock {sku}: on hand {level.on_hand}, reserved {level.reserved} "
                             f"(initially {tracked.stock[sku]})")
        except Exception as error:  # noqa: BLE001
            lines.append(f"  (figures unavailable: {error})")
        lines += [f"  log {line}" for line in log_lines(self.stack.run_dir, tracked.order_id, limit=25)]
        return "\n".join(lines)


def patient(call, patience_s: float = 120):
    """`call()`, retried while the stack cannot take it (a process resuming, a hop healing)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return call()
        except Exception:  # noqa: BLE001 - re-raised once patience runs out
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def log_lines(run_dir: Path, needle: str, limit: int = 25) -> list[str]:
    """The stack's log lines that mention `needle` (the last `limit` of them), with their file;
    of a run of injected errors, the first only."""
    found = []
    for log in sorted((run_dir / "logs").glob("*.log")):
        injected = False
        for line in log.read_text(errors="replace").splitlines():
            if needle not in line:
                continue
            if "injected fault on" in line:
                if injected:
                    continue
                injected = True
            else:
                injected = False
            found.append(f"{log.stem}: {line.strip()[:300]}")
    return found[-limit:]


class LogWindow:
    """The log lines written since it was opened: what a fault made the stack say."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.offsets = {log: log.stat().st_size for log in (run_dir / "logs").glob("*.log")}

    def lines(self, pattern: str, ignoring: str = "") -> list[str]:
        """New lines matching `pattern` once every token that contains `ignoring` (say, the
        scenario's tag: its order ids name the targets) is taken out."""
        matcher = re.compile(pattern, re.IGNORECASE)
        scrub = re.compile(rf"\S*{re.escape(ignoring)}\S*") if ignoring else None
        found = []
        for log in sorted((self.run_dir / "logs").glob("*.log")):
            with log.open("rb") as stream:
                stream.seek(self.offsets.get(log, 0))
                text = stream.read().decode(errors="replace")
            found += [f"{log.stem}: {line.strip()[:300]}" for line in text.splitlines()
                      if matcher.search(scrub.sub("", line) if scrub else line)]
        return found


@dataclass
class Tally:
    """Per fault kind: faults injected, orders run, violations found; and faults a log named."""

    kinds: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, verdict: Verdict, violations: list[str]) -> None:
        figures = self.kinds.setdefault(kind, [0, 0, 0, 0, 0])
        figures[0] += len(verdict.faults)
        figures[1] += len(verdict.orders)
        figures[2] += len(violations)
        figures[3] += sum(verdict.named.values())
        figures[4] += len(verdict.named)

    def count(self, kind: str, faults: int, orders: int, violations: int) -> None:
        figures = self.kinds.setdefault(kind, [0, 0, 0, 0, 0])
        figures[0] += faults
        figures[1] += orders
        figures[2] += violations

    def lines(self) -> list[str]:
        out = []
        for kind, (faults, orders, violations, named, checked) in sorted(self.kinds.items()):
            logs = f", {named}/{checked} named in a log line" if checked else ""
            out.append(f"faults {kind}: {faults} injected, {orders} orders, {violations} violations{logs}")
        return out
