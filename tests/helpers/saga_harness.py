"""The order saga on dapr_saga's harness (no sidecar, virtual clock, the SDK's own executor), with a
scripted world of services, and what the tests look at: the activities it called, the updates
the order's actor got, the timeline, the events published.

Registered as order-service registers it (order_service.workflows.register), so what runs here is
what runs in the app. A world function raises to fail an attempt: the saga's own retry policy
retries it, on the virtual clock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from dapr_saga.testing import HANG, Harness, Run, current_call  # noqa: F401 (HANG: for the tests)

from order_service import workflows
from order_service.activities import OrderNotUpdated
from order_service.domain import OrderRequest
from order_service.messages import Gate, OrderUpdate, SagaInput, StepResult

OK = StepResult(ok=True)
SAGA = "order_saga"
RETRY = "order_saga_retry"
# Set to a folder to keep every run's history there (tests/replay/harness records them so).
RECORD_TO = os.environ.get("ORDERSAGA_RECORD_HARNESS_RUNS", "")


def saga_input(*lines, price=100, threshold=1_000_00) -> SagaInput:
    order = OrderRequest(order_id="o-1", customer_id="c-1",
                         items=[{"sku": sku, "quantity": 1, "unit_price_cents": price} for sku in lines])
    return SagaInput(order=order, approval_threshold_cents=threshold, approval_timeout_s=3600, step_timeout_s=30)


def per_line(answer: Callable):
    """A stock activity of saga v1 (one call per line of the batch) from an answer per line."""
    def activity(batch):
        parts = [answer(line) for line in batch.lines]
        if any(part is HANG for part in parts):
            return HANG
        parts = [part.model_copy(update={"name": line.sku}) for line, part in zip(batch.lines, parts)]
        refusals = [part.reason for part in parts if not part.ok and not part.unknown]
        return StepResult(ok=all(part.ok for part in parts), unknown=any(part.unknown for part in parts),
                          reason=refusals[0] if refusals else "", parts=parts)
    return activity


def lines_answer(ok=True, reason="", short=()):
    """An inventory answer of saga v2 for all of an order's lines at once (all reserved, or none)."""
    def activity(batch):
        return StepResult(ok=ok, reason=reason, parts=[
            StepResult(name=line.sku, ok=ok, reason="" if ok else ("OUT_OF_STOCK" if line.sku in short
                                                                   else "NOT_RESERVED"))
            for line in batch.lines])
    return activity


def world(**overrides) -> dict[str, Callable]:
    """Every service answers yes unless overridden; shipments get a tracking number. A v1 stock
    activity is given as an answer per line."""
    stock = {name: per_line(overrides.pop(name)) for name in ("reserve_stock", "release_stock", "commit_stock")
             if name in overrides}
    base = {
        "update_order": lambda update: Gate(),
        "reserve_stock": per_line(lambda line: OK),
        "release_stock": per_line(lambda line: OK),
        "commit_stock": per_line(lambda line: OK),
        "reserve_lines": lines_answer(),
        "release_lines": lines_answer(),
        "commit_lines": lines_answer(),
        "finish_order": lambda finish: OK,
        "authorize_payment": lambda payment: OK,
        "capture_payment": lambda payment: OK,
        "void_payment": lambda payment: OK,
        "refund_payment": lambda payment: OK,
        "create_shipment": lambda shipment: StepResult(ok=True, detail="TRK-1"),
        "cancel_shipment": lambda shipment: OK,
    }
    base.update(overrides, **stock)
    return base


def fails(error: Exception):
    """An activity that fails every attempt with `error`."""
    def activity(_):
        raise error
    return activity


def actor_down_for(n_updates: int, *, unless=lambda update: False):
    """update_order fails for good (every attempt) for its first `n_updates` calls."""
    def update_order(update: OrderUpdate):
        if current_call().call <= n_updates and not unless(update):
            raise OrderNotUpdated("UNAVAILABLE: actor host not found")
        return Gate()
    return update_order


def run_saga(services: dict[str, Callable], saga: Any, *, workflow: str = SAGA, version: str | None = None,
             events: dict[str, list] | None = None, without_patches=(), finish: bool = True) -> Run:
    """Run the saga (`version` of it; the latest by default) to its end, the `events` raised once
    it waits (in order, per name)."""
    env = Harness(workflows.register, services)
    run = env.start(workflow, saga, instance_id=f"{workflow}-o-1", version=version, without_patches=without_patches)
    for name, payloads in (events or {}).items():
        for payload in payloads:
            run.raise_event(name, payload)
    if finish:
        run.finish()
    if RECORD_TO:
        _record(run)
    return run


def pinned(version: str):
    """`run_saga` for the order saga's `version` when none is given (a version's own tests keep
    testing it once a newer one is the latest)."""
    def run(services, saga, **kw):
        if kw.get("workflow", SAGA) == SAGA:
            kw.setdefault("version", version)
        return run_saga(services, saga, **kw)
    return run


def _record(run: Run) -> None:
    import inspect
    test = next((f.function for f in inspect.stack() if f.function.startswith("test_")), "run")
    folder = Path(RECORD_TO) / run.workflow / (run.version or "latest")
    n = len(list(folder.glob(f"{test}*.json"))) if folder.exists() else 0
    run.save(folder / f"{test}{f'-{n}' if n else ''}.json", name=test)


# ---- what the saga did -------------------------------------------------------------------------

def updates(run: Run) -> list[OrderUpdate]:
    """Every update sent to the actor: by update_order, by a gated step before it acts, or by a
    last step once it is done (saga v2's finish_order: counted if it succeeded)."""
    sent = []
    for call in run.calls:
        if call.name == "update_order":
            sent.append(call.input)
        elif getattr(call.input, "enter", None):
            sent.append(call.input.enter)
        elif call.name == "finish_order" and call.ok:
            sent.append(call.input.complete)
    return sent


def records(run: Run) -> list:
    """Every timeline entry sent to the actor, in order."""
    return [record for update in updates(run) for record in update.records]


def timeline(run: Run) -> list[tuple[str, str]]:
    return [(r.step, r.outcome) for r in records(run)]


def published(run: Run) -> list[str]:
    return [u.event.type for u in updates(run) if u.event]


def business_activities(run: Run) -> list[str]:
    """The activities started, in order (bookkeeping updates left out)."""
    return run.activities(include=lambda call: call.name != "update_order")


def undo_calls(run: Run, *names: str) -> list[str]:
    """The undo activities called, in order, with the lines a v1 stock undo names."""
    names = names or ("release_stock", "release_lines", "void_payment", "refund_payment", "cancel_shipment")
    return [" ".join([c.name] + ([line.sku for line in c.input.lines] if c.name == "release_stock" else []))
            for c in run.calls if c.name in names]


def needs_attention_update(run: Run) -> OrderUpdate:
    (update,) = [u for u in updates(run) if u.unfinished]
    return update


def ending_of(run: Run) -> OrderUpdate:
    """The last update that took (the order's record), or the one the saga left in its custom
    status when none took."""
    taken = [c.input for c in run.calls if c.name == "update_order" and c.ok]
    return taken[-1] if taken else OrderUpdate.model_validate_json(run.custom_status)
