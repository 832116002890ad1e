"""OrderActor's rules as pure functions: what a placing, a cancel, an approval decision, the saga's
updates, a retry, a close and the order's check-up do to the order's state, and what they refuse.

No I/O and no clock (the time comes in as `at`): the actor (order_service/actor.py) is the shell
that loads the order, asks these, saves it, and pays what the order owes the world (its events,
its index label, the saga's start and events). A refusal is `Refused` with the gRPC status name
the API answers with (DESIGN.md's errors).
"""

from __future__ import annotations

from datetime import datetime, timezone

from order_service.domain import (
    BEFORE_APPROVAL,
    CANCELLABLE,
    Ending,
    FailureReason,
    LifecycleEvent,
    OrderRequest,
    OrderState,
    OrderStatus,
    TimelineEntry,
    Unfinished,
    continuation_instance_id,
    retry_instance_id,
    saga_instance_id,
)
from order_service.messages import OrderUpdate

# Once a cancel is accepted, the saga may not move the order into these: it unwinds instead.
GATED = CANCELLABLE | {OrderStatus.SHIPPING}


class Refused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# ---- placing ------------------------------------------------------------------------------------

def is_new(existing: OrderState | None, request: OrderRequest) -> bool:
    """Whether a PlaceOrder places a new order: the same order again is accepted (and mends what
    a stop left), other content under the same id is refused."""
    if existing is None:
        return True
    if existing.request != request:
        raise Refused("ALREADY_EXISTS", f"order {request.order_id} exists with different content")
    return False


def new_order(request: OrderRequest, *, at: str, trace_parent: str, threshold_cents: int,
              saga_version: str = "") -> OrderState:
    """A placed order: owing its row in the orders index and its `placed` event (both paid
    before the saga starts), with the approval threshold of the day frozen with it, as the
    saga's input is, and the version of the saga it will run."""
    return OrderState(
        request=request,
        saga_instance_id=saga_instance_id(request.order_id),
        timeline=[TimelineEntry(at=at, step="place", outcome="PLACED", key="place")],
        trace_parent=trace_parent,
        placed_at=at,
        status_since=at,
        saga_version=saga_version,
        approval_threshold_cents=threshold_cents,
        owed_events=[LifecycleEvent(order_id=request.order_id, type="placed", status=OrderStatus.PLACED.value,
                                    total_cents=request.total_cents)],
    )


# ---- cancels and decisions ----------------------------------------------------------------------

def cancel(order: OrderState, reason: str, at: str) -> bool:
    """Accept a cancel (True), or see a repeat of one (False). Accepted until the order enters
    SHIPPING; from then on the actor's gate keeps the saga from charging or shipping, and the
    order owes its saga the cancel event until it is raised."""
    if order.cancel_requested:
        return False
    if order.status not in CANCELLABLE:
        why = "the shipment is being created" if order.status == OrderStatus.SHIPPING else f"it is {order.status}"
        raise Refused("FAILED_PRECONDITION", f"order {order.order_id} can no longer be cancelled: {why}")
    order.cancel_requested = True
    order.timeline.append(TimelineEntry(at=at, step="cancel", outcome="REQUESTED", detail=reason,
                                        key="cancel:REQUESTED"))
    if order.parked:
        # No workflow waits to be told: the cancel is how the parked order goes on (unless its
        # decision came first: then the second half's gates refuse to charge or ship).
        order.cancel_raised = True
        if not order.continuation:
            order.continuation, order.decided_at = "cancel", at
    return True


def cancel_reason(order: OrderState) -> str:
    requested = [e for e in order.timeline if e.key == "cancel:REQUESTED"]
    return requested[-1].detail if requested else "cancelled by request"


def decision_verdict(order: OrderState, decision: str, current_threshold_cents: int) -> str:
    """What an approval decision does: "duplicate" (the first one wins: a repeat is a no-op, and
    so is a contrary one while the saga has not acted yet) or "accept" (the saga is told, then it
    is remembered). Refused for orders not waiting for approval, including a contrary decision
    that comes after the saga acted; accepted ahead of the gate (the saga finds it buffered).
    Whether the order waits is judged by the threshold frozen with it, the one its saga runs with."""
    if order.decision and (order.decision == decision or order.status in BEFORE_APPROVAL):
        return "duplicate"
    if order.continuation and not order.decision:
        raise Refused("FAILED_PRECONDITION",
                      f"order {order.order_id} no longer waits for a decision: its wait ended ({order.continuation})")
    if order.decision:
        raise Refused("FAILED_PRECONDITION",
                      f"order {order.order_id} was already decided ({order.decision}) and is {order.status}")
    if order.status not in BEFORE_APPROVAL:
        raise Refused("FAILED_PRECONDITION", f"order {order.order_id} is not waiting for approval: {order.status}")
    if not order.awaits_decision(current_threshold_cents):
        raise Refused("FAILED_PRECONDITION", f"order {order.order_id} does not need approval")
    return "accept"


def remember_decision(order: OrderState, decision: str, approver: str, at: str) -> None:
    """The first decision: the saga was told (a saga that waits in the engine), or, for a parked
    order (or one whose saga will park), it is how the order goes on."""
    order.decision, order.decided_at, order.decided_by = decision, at, approver[:100]
    order.timeline.append(TimelineEntry(at=at, step="approval", outcome="RECEIVED",
                                        detail=f"{decision} by {approver}".strip(), key="approval:RECEIVED"))
    if order.parked and not order.continuation:
        order.continuation = decision


def time_out(order: OrderState, now_past_due: bool, at: str) -> bool:
    """A parked order whose wait ended with no decision goes on as timed out (True)."""
    if not order.parked or order.continuation or not now_past_due:
        return False
    order.continuation, order.decided_at = "timeout", at
    order.timeline.append(TimelineEntry(at=at, step="approval", outcome="WAIT_ENDED",
                                        detail=f"no decision by {order.approval_due}", key="approval:WAIT_ENDED"))
    return True


def continued(order: OrderState) -> str:
    """The parked order's second half started: its workflow is in charge now. Its instance id."""
    order.parked = False
    order.saga_instance_id = continuation_instance_id(order.order_id)
    return order.saga_instance_id


# ---- the saga's updates -----------------------------------------------------------------------

def may_enter(order: OrderState, status: OrderStatus) -> bool:
    """The gate: once a cancel is accepted, the saga may not move the order on (it unwinds)."""
    return not (order.cancel_requested and status in GATED)


def apply_records(order: OrderState, records: list[dict], unfinished: dict | None, at: str) -> bool:
    """Append the saga's timeline entries, each once per key; an entry with a `status` moves the
    order's status (and reason) with it, unless the gate refuses it. A terminal order stays as it
    is. Whether anything changed."""
    changed = False
    for record in records:
        status = OrderStatus(record["status"]) if record.get("status") else None
        if status and not may_enter(order, status):
            continue  # refused: record_steps' answer tells the saga to unwind
        key = record.get("key") or ""
        if key and any(e.key == key for e in order.timeline):
            continue  # a retried activity: already recorded
        order.timeline.append(TimelineEntry(at=at, step=record["step"], outcome=record["outcome"],
                                            detail=record.get("detail", ""), key=key))
        if status and not order.status.terminal:
            order.status = status
            order.reason = record.get("reason", "")
            if status == OrderStatus.NEEDS_ATTENTION and unfinished:
                order.unfinished = Unfinished.model_validate(unfinished)
            elif status.terminal:
                order.unfinished = None
            if status.terminal:
                order.saga_final_status = "COMPLETED"  # a saga records its end as its last step
            if status == OrderStatus.AWAITING_APPROVAL and record.get("parks_until"):
                park(order, record["parks_until"])
        if record.get("tracking_number"):
            order.tracking_number = record["tracking_number"]
        changed = True
    return changed


def park(order: OrderState, until: str | datetime) -> None:
    """The saga parked the order at the approval gate (its workflow ends): the order waits until
    `until`; a decision that came ahead of the gate is how it goes on, at once. `until` may come
    as a datetime: the SDK's actor serializer turns strings that look like times into them."""
    if isinstance(until, datetime):
        until = (until if until.tzinfo else until.replace(tzinfo=timezone.utc)).isoformat(timespec="milliseconds")
    order.parked, order.approval_due = True, until
    if order.decision and not order.continuation:
        order.continuation = order.decision


# ---- what needs a person: retry and close -------------------------------------------------------

def retry_verdict(order: OrderState) -> str:
    """What a RetryOrder does: "start" a retry, or, while one runs, answer with the order
    ("running": its workflow is restarted if a crash lost it). Only for NEEDS_ATTENTION."""
    if order.status != OrderStatus.NEEDS_ATTENTION:
        if order.retries and not order.status.terminal:
            return "running"
        raise Refused("FAILED_PRECONDITION",
                      f"order {order.order_id} is {order.status}: only an order that NEEDS_ATTENTION is retried")
    if order.unfinished is None:
        raise Refused("FAILED_PRECONDITION",
                      f"order {order.order_id} does not say what is left to do; close it by hand instead")
    return "start"


def start_retry(order: OrderState, by: str, at: str) -> None:
    """In flight again, under the retry's own workflow."""
    order.retries += 1
    order.timeline.append(TimelineEntry(at=at, step="retry", outcome="REQUESTED", detail=f"by {by}",
                                        key=f"retry {order.retries}:REQUESTED"))
    order.status = order.unfinished.resume_status
    order.saga_instance_id = retry_instance_id(order.order_id, order.retries)
    order.saga_final_status = ""


def close(order: OrderState, by: str, note: str, at: str) -> bool:
    """A person did by hand what the saga left: the order ends as the saga would have ended it
    (True), owing the event that announces it; a repeat of a close changes nothing (False)."""
    if not note.strip():
        raise Refused("INVALID_ARGUMENT", "note: say what was done by hand")
    if any(entry.key == "close:BY_HAND" for entry in order.timeline):
        return False
    if order.status != OrderStatus.NEEDS_ATTENTION:
        raise Refused("FAILED_PRECONDITION",
                      f"order {order.order_id} is {order.status}: only an order that NEEDS_ATTENTION is closed")
    ending = order.unfinished.ending if order.unfinished else None
    if ending is None:
        raise Refused("FAILED_PRECONDITION", f"order {order.order_id} does not say how it would have ended")
    order.status, order.reason = ending.status, ending.reason
    order.tracking_number = ending.tracking_number or order.tracking_number
    order.unfinished = None
    order.timeline.append(TimelineEntry(at=at, step="close", outcome=f"BY_HAND {ending.status}",
                                        detail=f"by {by}: {note}", key="close:BY_HAND"))
    order.owed_events.append(LifecycleEvent(
        order_id=order.order_id, type=ending.status.lower(), status=ending.status, reason=ending.reason,
        detail=f"closed by hand by {by}", total_cents=order.request.total_cents))
    return True


# ---- the check-up ---------------------------------------------------------------------------------

def note_stalled(order: OrderState, version: str, at: str) -> bool:
    """Say once on the timeline which version a STALLED saga waits for."""
    instance = order.saga_instance_id
    key = f"stalled:{instance}"
    if any(entry.key == key for entry in order.timeline):
        return False
    order.timeline.append(TimelineEntry(
        at=at, step="saga", outcome="STALLED", key=key,
        detail=f"{instance} runs version {version} of its workflow, which this release does not deploy: "
               "deploy it again (docs/changing-the-saga.md)"))
    return True


def flag_overdue(order: OrderState, past_deadline: bool, at: str) -> bool:
    """An order still in flight past its deadline is flagged once (timeline and `overdue`)."""
    if order.status.terminal or not past_deadline or any(e.key == "deadline" for e in order.timeline):
        return False
    order.timeline.append(TimelineEntry(at=at, step="deadline", outcome="EXCEEDED", detail=f"still {order.status}",
                                        key="deadline"))
    order.owed_events.append(LifecycleEvent(order_id=order.order_id, type="overdue", status=order.status,
                                            total_cents=order.request.total_cents, detail=f"still {order.status}"))
    return True


def left_update(custom_status: str) -> OrderUpdate | None:
    """The update a saga left as its custom status because the order never took it, if any."""
    if not custom_status:
        return None
    try:
        return OrderUpdate.model_validate_json(custom_status)
    except ValueError:
        return None


def adopt_lost_ending(order: OrderState, engine_status: str, output: str, custom_status: str, at: str) -> str:
    """The saga ended (or is gone: `engine_status` GONE) while the order is still in flight: its
    last writes never reached the order. What it left as its custom status is recorded now, as
    the saga meant it ("recorded"). Without it nothing runs on by itself, so a person must look:
    NEEDS_ATTENTION, saying what the engine knows ("lost")."""
    left = left_update(custom_status)
    if left is not None and apply_records(order, [r.model_dump() for r in left.records],
                                          left.unfinished.model_dump(mode="json") if left.unfinished else None, at) \
            and order.status.terminal:
        if left.event:
            order.owed_events.append(left.event)
        order.saga_final_status = "PURGED" if engine_status == "GONE" else engine_status
        return "recorded"
    returned = output.strip('"') if output else ""
    if returned in (OrderStatus.COMPLETED, OrderStatus.CANCELLED):
        ending = Ending(status=returned, tracking_number=order.tracking_number)
    else:
        ending = Ending(status=OrderStatus.FAILED, reason=FailureReason.INTERNAL_ERROR)
    detail = (f"its saga {order.saga_instance_id} is {engine_status}"
              f"{f' (returned {returned})' if returned else ''} but never recorded its end here: "
              "check the stock, the payment and the shipment by hand, then close or retry the order")
    order.timeline.append(TimelineEntry(at=at, step="saga", outcome="LOST", detail=detail,
                                        key=f"lost:{order.saga_instance_id}"))
    order.status, order.reason = OrderStatus.NEEDS_ATTENTION, ""
    order.saga_final_status = "PURGED" if engine_status == "GONE" else engine_status
    order.unfinished = Unfinished(calls=[], ending=ending, resume_status=OrderStatus.COMPENSATING)
    order.owed_events.append(LifecycleEvent(order_id=order.order_id, type="needs_attention",
                                            status=OrderStatus.NEEDS_ATTENTION, detail=detail[:200],
                                            total_cents=order.request.total_cents))
    return "lost"
