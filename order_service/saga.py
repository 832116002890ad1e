"""The order saga, as the business runs it.

1. Reserve stock for every line and hold the payment, in parallel.
2. Large orders wait for an approval decision (or its timeout).
3. Capture the payment, create the shipment, commit the stock, record COMPLETED.
Any failure undoes, in reverse, every step that succeeded or may have (a step that timed out
can still land later: each undo is idempotent and leaves a tombstone the late call respects).
An undo that keeps failing ends the order in NEEDS_ATTENTION, never silently. A cancel is
honoured until the shipment is about to be created; the actor is the gate that decides.

Workflow code is replayed from history, so it stays deterministic: no I/O, no clocks, no
environment. Every side effect is an activity, registered under a stable name.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import dapr.ext.workflow as wf

from order_service import decisions
from order_service.domain import Ending, FailureReason, OrderStatus, PlannedCall, Unfinished
from order_service.messages import (
    ApprovalDecision,
    Gate,
    LifecycleEvent,
    OrderUpdate,
    PaymentCall,
    SagaInput,
    ShipmentCall,
    StepRecord,
    StepResult,
    StockBatch,
    StockLine,
)

SAGA_NAME = "order_saga"
CANCELLED = "CANCELLED"  # a gated step's answer when the actor accepted a cancel first
APPROVAL_EVENT = "approval"
CANCEL_EVENT = "cancel"

# Technical failures (a service or sidecar briefly away) are retried with exponential backoff;
# business answers come back as results and are never retried.
TECHNICAL_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=500),
    max_number_of_attempts=4,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=5),
)

# Bookkeeping (the actor's timeline, lifecycle events) must outlast a sidecar or broker restart:
# retried for minutes rather than seconds.
BOOKKEEPING_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    max_number_of_attempts=12,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=30),
)

# An ending (the order's last record) outlasts what bookkeeping does: retried for about an hour
# before the saga ends without it; it then leaves the update as its custom status, where the
# order's check-up finds and applies it (OrderActor).
ENDING_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    max_number_of_attempts=70,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=60),
)

# Patches (README, "Changing the saga"): sagas that met these places before the release replay
# the old branch.
# A step that fails for another reason than a service being away (a bug in it, the order's
# record that cannot be written) is a fault: the saga stops, undoes what it did and leaves the
# order to a person (NEEDS_ATTENTION, ending FAILED INTERNAL_ERROR) instead of failing the
# workflow with stock and credit held, or the order with a business reason.
FAULTS_PATCH = "faults-stop-the-saga"
# The ending is retried for longer (ENDING_RETRY).
ENDING_PATCH = "ending-retried-longer"
# A cancel accepted before the approval timed out (its event did not reach the saga in time)
# ends the order CANCELLED, not APPROVAL_TIMEOUT.
CANCEL_BEATS_TIMEOUT_PATCH = "cancel-beats-approval-timeout"

# Failures of a step the saga retries and then counts as an unknown outcome: a service (or a
# sidecar on the way) was away, or the order's actor, asked to open a step's gate. The
# activities raise ServiceUnavailable and OrderNotUpdated; the gRPC error types are what they
# raised before.
TECHNICAL_ERRORS = frozenset({"ServiceUnavailable", "OrderNotUpdated", "AioRpcError", "_InactiveRpcError",
                              "RpcError"})

log = logging.getLogger("order_service.saga")
_GRPC_DETAILS = re.compile(r'details = "([^"]*)"')


class SagaStopped(Exception):
    """A fault stopped the saga going forward (Saga.stop_after_fault ends it)."""

    def __init__(self, saga: "Saga"):
        super().__init__(saga.fault)
        self.saga = saga


def stops_on_faults(workflow):
    """What every workflow version is registered inside (order_service/workflows.py): a saga
    stopped by a fault ends by undoing what it did, instead of failing the workflow."""
    @functools.wraps(workflow)
    def run(ctx, workflow_input):
        try:
            return (yield from workflow(ctx, workflow_input))
        except SagaStopped as stopped:
            return (yield from stopped.saga.stop_after_fault())
    return run


def order_saga(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
    saga = Saga(ctx, SagaInput.model_validate(saga_input))
    order, deadline_s = saga.order, saga.input.step_timeout_s
    stock = StockBatch(order_id=order.order_id, lines=[
        StockLine(order_id=order.order_id, sku=i.sku, quantity=i.quantity, deadline_s=deadline_s) for i in order.items])
    payment = PaymentCall(order_id=order.order_id, customer_id=order.customer_id, amount_cents=order.total_cents,
                          deadline_s=deadline_s)

    # 1. Announce the order; reserve every line and hold the payment, all in parallel.
    saga.note("reserve", "STARTED", status=OrderStatus.RESERVING)
    reserved, held = yield from saga.run_parallel(
        [Call("reserve", "reserve_stock", stock, "release_stock"),
         Call("authorize", "authorize_payment", payment, "void_payment")],
        announce="placed",
    )
    failure = decisions.reservation_failure(reserved, held)
    if failure:
        return (yield from saga.fail(failure))

    # 2. The approval gate.
    if decisions.needs_approval(order.total_cents, saga.input.approval_threshold_cents):
        gate = yield from saga.enter(OrderStatus.AWAITING_APPROVAL, "approval", announce="approval_requested")
        if gate.cancel_requested:
            return (yield from saga.cancel())
        outcome = yield from saga.wait_for_approval()
        if outcome == "cancelled":
            return (yield from saga.cancel())
        if outcome != "APPROVED":
            return (yield from saga.fail(
                FailureReason.APPROVAL_TIMEOUT if outcome == "TIMED_OUT" else FailureReason.APPROVAL_REJECTED
            ))

    # 3. Charge, ship, commit. Each of the first two moves the order into a status, and the
    # actor is the gate: a cancel it accepted first stops the step (and the saga unwinds); once
    # the order is SHIPPING it refuses cancels. The gate is asked inside the step's activity.
    charge = payment.model_copy(update={"enter": saga.entering(OrderStatus.CHARGING, "capture")})
    captured = yield from saga.run(Call("capture", "capture_payment", charge, "refund_payment"))
    if captured.reason == CANCELLED:
        return (yield from saga.cancel())
    if not captured.ok:
        return (yield from saga.fail(FailureReason.PAYMENT_UNAVAILABLE))

    shipment = ShipmentCall(order_id=order.order_id, customer_id=order.customer_id, deadline_s=deadline_s,
                            enter=saga.entering(OrderStatus.SHIPPING, "ship"))
    shipped = yield from saga.run(Call("ship", "create_shipment", shipment, "cancel_shipment"))
    if shipped.reason == CANCELLED:
        return (yield from saga.cancel())
    if not shipped.ok:
        return (yield from saga.fail(FailureReason.SHIPPING_FAILED))

    commit = Call("commit", "commit_stock", stock, None)
    committed = yield from saga.run(commit)
    if not committed.ok:
        # The goods are on their way: nothing to undo, but the commit is left to do (a retry
        # runs it again; a person may do it by hand), and then the order is complete.
        ending = Ending(status=OrderStatus.COMPLETED, tracking_number=shipped.detail)
        return (yield from saga.needs_attention("stock commit failed after the shipment was created",
                                                Unfinished(calls=[commit.planned()], ending=ending,
                                                           resume_status=OrderStatus.SHIPPING)))

    return (yield from saga.complete(tracking_number=shipped.detail))


@dataclass(frozen=True)
class Call:
    """One step: the activity that does it and the activity that undoes it (or None). A step
    over a StockBatch answers per line, and only the lines that need it are undone."""

    step: str
    activity: str
    input: object
    undo: str | None

    def planned(self) -> PlannedCall:
        """This call as data, to be run again by a retry."""
        return PlannedCall(step=self.step, activity=self.activity, input=self.input.model_dump(mode="json"))

    def to_undo(self, result: StepResult) -> "Call | None":
        """The undo this result calls for, if any (a definite no left nothing to undo)."""
        if not self.undo:
            return None
        if result.parts:
            keep = [decisions.must_undo(part) for part in result.parts]
            return Call(f"undo {self.step}", self.undo, self.input.only(keep), None) if any(keep) else None
        if not decisions.must_undo(result):
            return None
        return Call(f"undo {self.step}", self.undo, self.input.model_copy(update={"enter": None}), None)


class Saga:
    """Bookkeeping for one run: the timeline, lifecycle events, and what to undo on failure.

    Timeline entries are noted as the saga goes and written to the actor in batches, by the
    next `update_order` activity (a status change, an announcement, the ending): one workflow
    round trip and one actor write for several entries. They are durable from the moment they
    are noted, because they are derived from the workflow's own history.
    """

    def __init__(self, ctx: wf.DaprWorkflowContext, saga_input: SagaInput, key_prefix: str = ""):
        self.ctx = ctx
        self.input = saga_input
        self.order = saga_input.order
        self.to_undo: list[Call] = []
        self.unwritten: list[StepRecord] = []
        # The actor records an entry once per key; a retry's entries carry their own prefix.
        self.key_prefix = key_prefix
        self.fault = ""  # what stopped the saga, when a fault did (see FAULTS_PATCH)
        self.ending = False  # set once the saga unwinds or ends: it no longer stops on faults
        # What a fault leaves for a person when there is nothing to undo (a retry's calls).
        self.left_on_fault: Unfinished | None = None
        self._updates: dict = {}  # update task -> the OrderUpdate it carries

    # ---- the timeline and events ------------------------------------------------------------

    def note(self, step: str, outcome: str, *, status: str = "", reason: str = "", detail: str = "",
             tracking_number: str = "") -> None:
        """Add a timeline entry; written with the next update (`status` moves the order)."""
        if not self.ctx.is_replaying:
            log.info("order=%s step=%s outcome=%s%s", self.order.order_id, step, outcome,
                     f" detail={detail}" if detail else "")
        self.unwritten.append(StepRecord(
            order_id=self.order.order_id, step=step, outcome=outcome, detail=detail,
            key=f"{self.key_prefix}{step}:{outcome}",
            status=status, reason=reason, tracking_number=tracking_number))

    def update_message(self, announce: str = "", *, status: str = "", reason: str = "", detail: str = "",
                       unfinished: Unfinished | None = None) -> OrderUpdate:
        """The noted entries (taken: they are written with this update) and the `announce` event."""
        event = LifecycleEvent(order_id=self.order.order_id, type=announce, status=status or announce.upper(),
                               reason=reason, detail=detail, total_cents=self.order.total_cents) if announce else None
        update = OrderUpdate(order_id=self.order.order_id, records=self.unwritten, event=event, unfinished=unfinished)
        self.unwritten = []
        return update

    def start_update(self, announce: str = "", *, policy: wf.RetryPolicy = BOOKKEEPING_RETRY, **fields):
        """Start the activity that writes the noted entries and publishes `announce` (if any)."""
        message = self.update_message(announce, **fields)
        task = self.ctx.call_activity("update_order", input=message, retry_policy=policy)
        self._updates[task] = message
        return task

    def finish_update(self, task, announce: str):
        """The actor's answer (a Gate) to a finished update. An event the broker kept refusing
        must not fail the order: the miss goes on the timeline instead (use with `yield from`)."""
        if task.is_failed and failed_with(task, "EventNotPublished"):
            self.note(f"event {announce}", "UNPUBLISHED", detail=_short(task.get_exception()))
            return (yield from self.update())
        if task.is_failed and self.ctx.is_patched(FAULTS_PATCH):
            return self._unrecorded(task)
        return Gate.model_validate(task.get_result())

    def update(self, announce: str = "", **event_fields):
        task = self.start_update(announce, **event_fields)
        yield wf.when_any([task])  # completes on failure too: finish_update looks at it
        return (yield from self.finish_update(task, announce))

    def end_with_update(self, announce: str = "", **event_fields):
        """The saga's last update: retried for longer than the others."""
        self.ending = True
        policy = ENDING_RETRY if self.ctx.is_patched(ENDING_PATCH) else BOOKKEEPING_RETRY
        task = self.start_update(announce, policy=policy, **event_fields)
        yield wf.when_any([task])
        return (yield from self.finish_update(task, announce))

    def _unrecorded(self, task) -> Gate:
        """An update the order's actor never took, after minutes of retries (its host or store
        away, or a bug). Its entries are noted again, for the next update. An update that moved
        the order into a status, before the saga unwinds or ends, is a gate the actor did not
        open: a fault, and the saga must not go on past it, so it stops (SagaStopped). Any other
        goes on, and the saga leaves what the order has not heard as its custom status, where
        the order's check-up finds it and records it (OrderActor)."""
        message = self._updates[task]
        self.unwritten = message.records + self.unwritten
        fault = f"the order's record could not be written: {_short(task.get_exception())}"
        if not self.ctx.is_replaying:
            log.error("order=%s step=update outcome=UNRECORDED detail=%s", self.order.order_id, fault)
        if not self.ending and any(record.status for record in message.records):
            self.fault = self.fault or fault
            raise SagaStopped(self)
        self.ctx.set_custom_status(message.model_copy(update={"records": self.unwritten}).model_dump_json())
        return Gate()

    def entering(self, status: OrderStatus, step: str) -> OrderUpdate:
        """The update a gated step asks the actor to accept first: the entries noted so far
        and the move to `status`."""
        self.note(step, "STARTED", status=status)
        update = OrderUpdate(order_id=self.order.order_id, records=self.unwritten)
        self.unwritten = []
        return update

    def enter(self, status: OrderStatus, step: str, announce: str = ""):
        """Move the order to `status`; the actor answers whether a cancel came first (a Gate)."""
        self.note(step, "STARTED", status=status)
        return (yield from self.update(announce, status=status))

    # ---- running steps ----------------------------------------------------------------------

    def run(self, call: Call):
        results = yield from self.run_parallel([call])
        return results[0]

    def run_parallel(self, calls: list[Call], announce: str = ""):
        """Start every call (with `announce`, also the update that writes the timeline and
        publishes that event), wait for all of them and note each outcome. Each call bounds
        itself: its gRPC deadline is the step timeout, and a call past it answers 'unknown'."""
        tasks = [self.ctx.call_activity(c.activity, input=c.input, retry_policy=TECHNICAL_RETRY) for c in calls]
        update = self.start_update(announce) if announce else None
        pending = tasks + ([update] if update else [])
        while pending:  # when_any, not when_all: a failed call must not stop the wait for the others
            pending.remove((yield wf.when_any(pending)))
        results = [self._result(call, task) for call, task in zip(calls, tasks)]
        for call, result in zip(calls, results):  # first: a fault in the update below unwinds them
            undo = call.to_undo(result)
            if undo:
                self.to_undo.append(undo)
        if update:
            yield from self.finish_update(update, announce)
        for call, result in zip(calls, results):
            for name, part in [(f"{call.step} {p.name}", p) for p in result.parts] or [(call.step, result)]:
                self.note(name, _outcome(part), detail=part.detail)
        return results

    def _result(self, call: "Call", task) -> StepResult:
        """A step's result. A step that failed after its retries is an unknown outcome (it may
        have happened, so it is undone); one that failed for another reason than a service
        being away is also a fault, which the ending reports (see FAULTS_PATCH)."""
        if task.is_failed and _error_type(task) not in TECHNICAL_ERRORS and self.ctx.is_patched(FAULTS_PATCH):
            self.fault = self.fault or f"{call.step} ({call.activity}) raised {_error_type(task)}: " \
                                       f"{_short(task.get_exception())}"
            if not self.ctx.is_replaying:
                log.error("order=%s step=%s outcome=FAULT detail=%s", self.order.order_id, call.step, self.fault)
        return result_of(task)

    def wait_for_approval(self):
        """'APPROVED', 'REJECTED', 'TIMED_OUT' or 'cancelled'. The first decision wins."""
        # Waited for only here: an event raised before is buffered by the engine until then, and
        # an open-ended wait costs a durable timer (a scheduler job) for as long as it lasts.
        # Elsewhere the actor's gate catches cancels.
        cancel = self.ctx.wait_for_external_event(CANCEL_EVENT)
        decision = self.ctx.wait_for_external_event(APPROVAL_EVENT)
        timer = self.ctx.create_timer(timedelta(seconds=self.input.approval_timeout_s))
        winner = yield wf.when_any([decision, timer, cancel])
        if winner is cancel:
            return "cancelled"
        if winner is timer:
            self.note("approval", "TIMED_OUT")
            return "TIMED_OUT"
        approval = ApprovalDecision.model_validate(decision.get_result())
        outcome = decisions.approval_outcome(approval.decision)
        self.note("approval", outcome, detail=f"by {approval.approver}".strip())
        return outcome

    # ---- endings ----------------------------------------------------------------------------

    def complete(self, tracking_number: str):
        self.note("complete", "COMPLETED", status=OrderStatus.COMPLETED, detail=tracking_number,
                  tracking_number=tracking_number)
        yield from self.end_with_update("completed", detail=tracking_number)
        return OrderStatus.COMPLETED.value

    def fail(self, reason: FailureReason):
        return (yield from self._unwind(OrderStatus.FAILED, reason))

    def cancel(self):
        return (yield from self._unwind(OrderStatus.CANCELLED, ""))

    def needs_attention(self, detail: str, unfinished: Unfinished):
        """Stop here, never silently: the order records what is left to do and how it would
        have ended, for a retry or a person (RetryOrder, CloseOrder)."""
        if self.fault:
            detail = f"{detail}; fault: {self.fault}"[:500]
        self.note("attention", "NEEDED", status=OrderStatus.NEEDS_ATTENTION, detail=detail)
        yield from self.end_with_update("needs_attention", detail=detail, unfinished=unfinished)
        return OrderStatus.NEEDS_ATTENTION.value

    def finish(self, final: OrderStatus, reason: str):
        """End a saga that undid its steps (or a retry that finished them) in `final`."""
        self.note("finish", final.value, status=final, reason=reason)
        yield from self.end_with_update(final.value.lower(), status=final.value, reason=reason)
        return final.value

    def stop_after_fault(self):
        """End a saga a fault stopped (SagaStopped): undo every step that succeeded or may have,
        then leave the order to a person, saying what failed (NEEDS_ATTENTION, ending FAILED
        INTERNAL_ERROR once the rest is done). A saga with nothing to undo but calls of its own
        left (a retry) leaves those."""
        if self.left_on_fault is not None:
            return (yield from self.needs_attention("stopped", self.left_on_fault))
        return (yield from self._unwind(OrderStatus.FAILED, FailureReason.INTERNAL_ERROR))

    def _unwind(self, final: OrderStatus, reason: str):
        """Compensate in reverse; end in `final`, or NEEDS_ATTENTION if an undo keeps failing
        or a fault came first (then a person looks before the order ends FAILED)."""
        self.ending = True
        self.note("compensate", "STARTED", status=OrderStatus.COMPENSATING, reason=reason)
        gate = yield from self.update()
        if reason == FailureReason.APPROVAL_TIMEOUT and gate.cancel_requested and \
                self.ctx.is_patched(CANCEL_BEATS_TIMEOUT_PATCH):
            final, reason = OrderStatus.CANCELLED, ""  # the customer cancelled first
        stuck: list[Call] = []
        for undo in reversed(self.to_undo):
            result = yield from self.run(undo)
            if not result.ok:
                stuck.append(undo)
        if self.fault and final == OrderStatus.FAILED:
            reason = FailureReason.INTERNAL_ERROR
        if stuck or self.fault:
            names = ", ".join(undo.step.removeprefix("undo ") for undo in stuck)
            unfinished = Unfinished(calls=[undo.planned() for undo in stuck],
                                    ending=Ending(status=final, reason=reason), resume_status=OrderStatus.COMPENSATING)
            detail = f"could not undo: {names} (after {reason or 'cancel'})" if stuck else "undone"
            return (yield from self.needs_attention(detail, unfinished))
        return (yield from self.finish(final, reason))


def _outcome(result: StepResult) -> str:
    if result.ok:
        return "DONE"
    if result.reason == CANCELLED:
        return CANCELLED
    return "UNKNOWN" if result.unknown else result.reason or "FAILED"


def failed_with(task, error_type: str) -> bool:
    return _error_type(task) == error_type


def _error_type(task) -> str:
    """The type name of the exception a failed activity raised, as the engine recorded it."""
    details = getattr(task.get_exception(), "details", None)
    return getattr(details, "error_type", "")


def result_of(task) -> StepResult:
    if task.is_failed:
        return StepResult(ok=False, unknown=True, reason="ERROR", detail=_short(task.get_exception()))
    return StepResult.model_validate(task.get_result())


def _short(error: Exception) -> str:
    """A one-line reason for the timeline: a gRPC error's details, else the first line."""
    text = str(error)
    details = _GRPC_DETAILS.search(text)
    if details:
        return details.group(1)[:200]
    return (text.splitlines()[0] if text else type(error).__name__)[:200]
