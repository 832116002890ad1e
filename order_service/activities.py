"""Saga activities: each is one side effect, a thin adapter around one call.

Activities run at least once, so every call carries a business idempotency key (order_id:step)
and the callee stores its result under that key. Business answers (out of stock, declined)
come back as results, and so does a call that outlives its step timeout (the gRPC deadline):
its outcome is unknown, which the saga compensates. Only technical failures raise, which is
what the saga's retry policy retries. Service calls go through our own sidecar with
`dapr-app-id` metadata (gRPC proxying), so Dapr's name resolution, resiliency policies and
access control apply.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import grpc
from dapr.ext.workflow import WorkflowActivityContext
from dapr_saga import EventNotPublished, ServiceUnavailable

from inventory_service import inventory_pb2, inventory_pb2_grpc
from order_service import admission, events, metrics
from order_service.actor import ACTOR_TYPE
from order_service.domain import CANCELLABLE, OrderStatus
from order_service.messages import (
    FinishCall,
    Gate,
    OrderUpdate,
    PaymentCall,
    ShipmentCall,
    StepResult,
    StockBatch,
    StockLine,
    StockLines,
)
from order_service.sidecar import ActorCallError, sidecar
from payment_service import payment_pb2, payment_pb2_grpc
from shipping_service import shipping_pb2, shipping_pb2_grpc

log = logging.getLogger("order_service.activities")

_attempts: collections.Counter[str] = collections.Counter()  # per idempotency key, this process


def _to(app_id: str, deadline_s: float) -> dict:
    # Through our sidecar to `app_id`; the activity's span (the workflow SDK opens one) rides along.
    return {"metadata": sidecar().metadata(("dapr-app-id", app_id)), "timeout": deadline_s}


def _logged(order_id: str, step: str, key: str, result: StepResult, metric_step: str, started: float) -> StepResult:
    _attempts[key] += 1
    outcome = "ok" if result.ok else result.reason or "FAILED"
    metrics.observe_step(metric_step, outcome, time.monotonic() - started)
    log.info("order=%s step=%s attempt=%d outcome=%s%s", order_id, step, _attempts[key],
             outcome, f" detail={result.detail}" if result.detail else "")
    return result


# ServiceUnavailable (dapr_saga's): a service call failed technically (the service, or a sidecar
# on the way, is away): the saga retries it, then counts its outcome unknown. Any other exception
# out of an activity is a fault the saga does not judge (the rules' technical_errors,
# order_service/sagas).


class OrderNotUpdated(Exception):
    """The order's actor did not take an update (its host or store away, or a refusal)."""


async def _guarded(order_id: str, step: str, key: str, call, metric_step: str = "", undoable: bool = True):
    """Log a technical failure with its attempt number, then raise it as ServiceUnavailable
    (the saga retries). A call of an `undoable` step past its deadline is not retried: it may
    have happened, so it is an unknown outcome, which the saga undoes. A call that is itself an
    undo, or has none (the commit), is retried instead: each is idempotent, and one that
    happened late is only done again. Each attempt's time goes to the step latency metric under
    `metric_step` (default: `step`)."""
    metric_step = metric_step or step
    started = time.monotonic()
    try:
        result = _logged(order_id, step, key, await call, metric_step, started)
        admission.current().answered(order_id)
        return result
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and undoable:
            admission.current().answered(order_id)
            return _logged(order_id, step, key, StepResult(ok=False, unknown=True, reason="TIMEOUT",
                                                           detail="no answer within the step timeout"),
                           metric_step, started)
        _attempts[key] += 1
        metrics.observe_step(metric_step, "error", time.monotonic() - started)
        detail = f"{error.code().name}: {error.details()}"
        log.warning("order=%s step=%s attempt=%d outcome=error detail=%s", order_id, step, _attempts[key], detail)
        admission.current().resting(order_id)  # backoffs and failing calls: it costs nothing now
        raise ServiceUnavailable(f"{step}: {detail}") from error


# ---- inventory -------------------------------------------------------------------------------

def _inventory() -> inventory_pb2_grpc.InventoryServiceStub:
    return inventory_pb2_grpc.InventoryServiceStub(sidecar().aio_channel())


async def reserve_stock(ctx: WorkflowActivityContext, batch: StockBatch) -> StepResult:
    async def reserve(line: StockLine) -> StepResult:
        reply = await _inventory().Reserve(inventory_pb2.ReserveRequest(
            idempotency_key=line.idempotency_key, sku=line.sku, quantity=line.quantity),
            **_to("inventory-service", line.deadline_s))
        return StepResult(ok=reply.reserved, reason=reply.reason)
    return await _each_line(batch, "reserve", "", reserve)


async def release_stock(ctx: WorkflowActivityContext, batch: StockBatch) -> StepResult:
    async def release(line: StockLine) -> StepResult:
        await _inventory().Release(inventory_pb2.ReservationRef(idempotency_key=line.idempotency_key),
                                   **_to("inventory-service", line.deadline_s))
        return StepResult(ok=True)
    return await _each_line(batch, "release", ":release", release)


async def commit_stock(ctx: WorkflowActivityContext, batch: StockBatch) -> StepResult:
    async def commit(line: StockLine) -> StepResult:
        await _inventory().Commit(inventory_pb2.ReservationRef(idempotency_key=line.idempotency_key),
                                  **_to("inventory-service", line.deadline_s))
        return StepResult(ok=True)
    return await _each_line(batch, "commit", ":commit", commit)


async def _each_line(batch: StockBatch, verb: str, key_suffix: str, call) -> StepResult:
    """Call inventory for every line at once. A technical failure of any line fails the whole
    activity, and the retry repeats every line: safe, each call is idempotent by its key."""
    parts = await asyncio.gather(*(
        _guarded(line.order_id, f"{verb} {line.sku}", line.idempotency_key + key_suffix, call(line), verb,
                 undoable=verb == "reserve")
        for line in batch.lines))
    return StepResult.batch([part.model_copy(update={"name": line.sku}) for line, part in zip(batch.lines, parts)])


# Saga v2: all lines in one call and one transaction at inventory.

def _lines_result(batch: StockLines, reply: inventory_pb2.LinesReply) -> StepResult:
    """One part per line of the call, for the timeline; the reply names the short lines."""
    outcomes = {line.sku: line for line in reply.lines}
    parts = [StepResult(name=line.sku, ok=reply.done, reason="" if reply.done else
                        (outcomes[line.sku].reason if line.sku in outcomes else reply.reason))
             for line in batch.lines]
    return StepResult(ok=reply.done, reason=reply.reason, parts=parts)


async def reserve_lines(ctx: WorkflowActivityContext, batch: StockLines) -> StepResult:
    if not await _gate_opens(batch.enter):
        return CANCELLED_FIRST

    async def call():
        reply = await _inventory().ReserveLines(inventory_pb2.ReserveLinesRequest(
            idempotency_key=batch.idempotency_key,
            lines=[inventory_pb2.Line(sku=line.sku, quantity=line.quantity) for line in batch.lines]),
            **_to("inventory-service", batch.deadline_s))
        return _lines_result(batch, reply)
    return await _guarded(batch.order_id, "reserve", batch.idempotency_key, call())


async def release_lines(ctx: WorkflowActivityContext, batch: StockLines) -> StepResult:
    async def call():
        reply = await _inventory().ReleaseLines(inventory_pb2.ReservationRef(idempotency_key=batch.idempotency_key),
                                                **_to("inventory-service", batch.deadline_s))
        return _lines_result(batch, reply)
    return await _guarded(batch.order_id, "release", batch.idempotency_key + ":release", call(), undoable=False)


async def commit_lines(ctx: WorkflowActivityContext, batch: StockLines) -> StepResult:
    async def call():
        reply = await _inventory().CommitLines(inventory_pb2.ReservationRef(idempotency_key=batch.idempotency_key),
                                               **_to("inventory-service", batch.deadline_s))
        return _lines_result(batch, reply)
    return await _guarded(batch.order_id, "commit", batch.idempotency_key + ":commit", call(), undoable=False)


# ---- payment ---------------------------------------------------------------------------------

def _payments() -> payment_pb2_grpc.PaymentServiceStub:
    return payment_pb2_grpc.PaymentServiceStub(sidecar().aio_channel())


async def authorize_payment(ctx: WorkflowActivityContext, payment: PaymentCall) -> StepResult:
    async def call():
        reply = await _payments().Authorize(payment_pb2.AuthorizeRequest(
            idempotency_key=payment.idempotency_key, customer_id=payment.customer_id,
            amount_cents=payment.amount_cents), **_to("payment-service", payment.deadline_s))
        return StepResult(ok=reply.approved, reason=reply.reason or ("" if reply.approved else reply.state))
    return await _guarded(payment.order_id, "authorize", payment.idempotency_key, call())


async def capture_payment(ctx: WorkflowActivityContext, payment: PaymentCall) -> StepResult:
    if not await _gate_opens(payment.enter):
        return CANCELLED_FIRST

    async def call():
        reply = await _payments().Capture(payment_pb2.PaymentRef(idempotency_key=payment.idempotency_key),
                                          **_to("payment-service", payment.deadline_s))
        return StepResult(ok=reply.state == "CAPTURED", reason="" if reply.state == "CAPTURED" else reply.state)
    return await _guarded(payment.order_id, "capture", payment.idempotency_key + ":capture", call())


async def void_payment(ctx: WorkflowActivityContext, payment: PaymentCall) -> StepResult:
    async def call():
        await _payments().Void(payment_pb2.PaymentRef(idempotency_key=payment.idempotency_key),
                               **_to("payment-service", payment.deadline_s))
        return StepResult(ok=True)
    return await _guarded(payment.order_id, "void", payment.idempotency_key + ":void", call(),
                          undoable=False)


async def refund_payment(ctx: WorkflowActivityContext, payment: PaymentCall) -> StepResult:
    async def call():
        await _payments().Refund(payment_pb2.PaymentRef(idempotency_key=payment.idempotency_key),
                                 **_to("payment-service", payment.deadline_s))
        return StepResult(ok=True)
    return await _guarded(payment.order_id, "refund", payment.idempotency_key + ":refund", call(),
                          undoable=False)


# ---- shipping --------------------------------------------------------------------------------

def _shipping() -> shipping_pb2_grpc.ShippingServiceStub:
    return shipping_pb2_grpc.ShippingServiceStub(sidecar().aio_channel())


async def create_shipment(ctx: WorkflowActivityContext, shipment: ShipmentCall) -> StepResult:
    if not await _gate_opens(shipment.enter):
        return CANCELLED_FIRST

    async def call():
        reply = await _shipping().CreateShipment(shipping_pb2.CreateShipmentRequest(
            idempotency_key=shipment.idempotency_key, order_id=shipment.order_id,
            customer_id=shipment.customer_id), **_to("shipping-service", shipment.deadline_s))
        created = reply.state == "CREATED"
        return StepResult(ok=created, reason="" if created else reply.state, detail=reply.tracking_number)
    return await _guarded(shipment.order_id, "ship", shipment.idempotency_key, call())


async def cancel_shipment(ctx: WorkflowActivityContext, shipment: ShipmentCall) -> StepResult:
    async def call():
        await _shipping().CancelShipment(shipping_pb2.ShipmentRef(idempotency_key=shipment.idempotency_key),
                                         **_to("shipping-service", shipment.deadline_s))
        return StepResult(ok=True)
    return await _guarded(shipment.order_id, "cancel shipment", shipment.idempotency_key + ":cancel", call(),
                          undoable=False)


# ---- the order's actor and its events -------------------------------------------------------

# A gated step found that a cancel was accepted first. Counted as unknown rather than a definite
# no: an earlier attempt of the same activity may have gone past the gate, so the saga undoes it
# (an idempotent no-op when nothing happened).
GATED = CANCELLABLE | {OrderStatus.SHIPPING}  # the statuses a cancel keeps the saga out of
CANCELLED_FIRST = StepResult.refused("a cancel was accepted first")


async def update_order(ctx: WorkflowActivityContext, update: OrderUpdate) -> Gate:
    """Append timeline entries (and maybe a status) on the order's actor in one call, then
    publish the update's lifecycle event, unless the actor refused the status change. Both
    halves are idempotent (entry keys, stable event ids), so a retry repeats them safely; a
    publish that keeps failing raises `EventNotPublished` after the entries are on the actor."""
    gate = await _record(update)
    if update.event and not refused(update, gate):
        try:
            await events.publish(update.event)
        except Exception as error:  # noqa: BLE001 - the broker client raises many kinds
            raise EventNotPublished(f"{update.event.type}: {error}") from error
    return gate


async def finish_order(ctx: WorkflowActivityContext, finish: FinishCall) -> StepResult:
    """Commit the stock, then record the completion (saga v2): one workflow round trip for
    both. A commit that fails raises, and nothing of the completion is recorded; a retry
    repeats both halves safely (the commit and the entries are idempotent by key)."""
    committed = await commit_lines(ctx, finish.commit)
    if committed.ok:
        await update_order(ctx, finish.complete)
    return committed


def refused(update: OrderUpdate, gate: Gate) -> bool:
    """Whether the actor refused the update's status change: once a cancel is accepted it
    refuses every move into an in-flight status (OrderActor.record_steps), never the unwinding
    or the ending, whose events (cancelled, failed, needs_attention) must still go out."""
    return gate.cancel_requested and any(r.status in GATED for r in update.records if r.status)


async def _gate_opens(update: OrderUpdate | None) -> bool:
    """A step that moves the order into a status asks the actor first, in the same activity
    (one workflow round trip, not two). The actor refuses when a cancel was accepted before."""
    return update is None or not (await _record(update)).cancel_requested


async def _record(update: OrderUpdate) -> Gate:
    """The entries (and the status change) on the order's actor. An actor that refused them, or
    failed half-way (its store away), did not take them: OrderNotUpdated, which the saga retries."""
    body = {"records": [r.model_dump(mode="json") for r in update.records],
            "unfinished": update.unfinished.model_dump(mode="json") if update.unfinished else None}
    try:
        reply = await sidecar().call_actor_async(ACTOR_TYPE, update.order_id, "record_steps", body)
    except ActorCallError as error:
        log.warning("order=%s step=update outcome=error detail=%s", update.order_id, error)
        admission.current().resting(update.order_id)
        raise OrderNotUpdated(str(error)) from error
    return Gate.model_validate(reply)


# EventNotPublished (dapr_saga's): the entries are recorded but the event did not reach the
# broker (the saga notes it on the timeline).


# Registered under these names: renaming a Python function must never break replay.
ACTIVITIES = {
    "reserve_stock": reserve_stock,
    "release_stock": release_stock,
    "commit_stock": commit_stock,
    "authorize_payment": authorize_payment,
    "capture_payment": capture_payment,
    "void_payment": void_payment,
    "refund_payment": refund_payment,
    "create_shipment": create_shipment,
    "cancel_shipment": cancel_shipment,
    "update_order": update_order,
    # saga v2
    "reserve_lines": reserve_lines,
    "release_lines": release_lines,
    "commit_lines": commit_lines,
    "finish_order": finish_order,
}
