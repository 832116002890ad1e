"""OrderActor: one virtual actor per order, owner of the order's identity, status and timeline.

It announces the order (`placed` on order-events), starts the saga workflow and returns: it never
awaits the saga (an activity calls back into
this actor, and an actor serves one turn at a time). Activities record steps through
`record_steps`, idempotent per key because activities run at least once. Because the actor
serves one call at a time, it is also the race-free gate for cancels: a cancel is accepted
only while the order has not entered SHIPPING, and once accepted the saga may not enter it.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta, timezone

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.ext.workflow.aio import DaprWorkflowClient
from pydantic import ValidationError

from apphost import observability
from order_service import admission, events, index, metrics
from order_service.actor_host import incoming_traceparent
from order_service.dapr_clients import dapr_client
from order_service.decisions import needs_approval
from order_service.domain import (
    BEFORE_APPROVAL,
    CANCELLABLE,
    OrderRequest,
    OrderState,
    OrderStatus,
    TimelineEntry,
    Unfinished,
    describe,
    retry_instance_id,
    saga_instance_id,
)
from order_service.messages import LifecycleEvent, RetryInput, SagaInput
from order_service.retry_saga import RETRY_SAGA_NAME
from order_service.saga import APPROVAL_EVENT, CANCEL_EVENT, SAGA_NAME
from order_service.settings import Settings
from order_service.traced_workflows import schedule_workflow

ACTOR_TYPE = "OrderActor"
STATE_KEY = "order"
DEADLINE_REMINDER = "deadline"

log = logging.getLogger("order_service.actor")
_workflow_client: DaprWorkflowClient | None = None
_settings = Settings()


def configure(settings: Settings) -> None:
    """Called once by the composition root: thresholds and timeouts for new sagas."""
    global _settings
    _settings = settings


def workflow_client() -> DaprWorkflowClient:
    global _workflow_client
    if _workflow_client is None:
        _workflow_client = DaprWorkflowClient()
    return _workflow_client


class OrderError(Exception):
    """A refused request. `code` is the gRPC status name the API maps it to."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class OrderActorInterface(ActorInterface):
    """The actor's methods, by the names callers (API, activities) invoke them with."""

    @actormethod(name="place")
    async def place(self, data: dict) -> dict: ...

    @actormethod(name="get")
    async def get(self) -> dict | None: ...

    @actormethod(name="cancel")
    async def cancel(self, data: dict) -> dict: ...

    @actormethod(name="decide")
    async def decide(self, data: dict) -> dict: ...

    @actormethod(name="record_steps")
    async def record_steps(self, data: dict) -> dict: ...

    @actormethod(name="retry")
    async def retry(self, data: dict) -> dict: ...

    @actormethod(name="close")
    async def close(self, data: dict) -> dict: ...

    @actormethod(name="note_stalled")
    async def note_stalled(self, data: dict) -> dict: ...


def traced(method):
    """A span for an actor method, in the order's own trace: the caller's span is the parent
    when it belongs to that trace (the API placing it, an activity recording a step), else the
    order's stored traceparent is, with a link to the caller (an approval event, a cancel)."""
    name = f"{ACTOR_TYPE}.{method.__name__}"

    @functools.wraps(method)
    async def with_span(self, *args):
        incoming = incoming_traceparent()
        order = await self._load()  # the state manager caches it for the method itself
        stored = order.trace_parent if order else ""
        joins = not stored or observability.trace_id_of(stored) == observability.trace_id_of(incoming)
        with observability.span(name, parent=incoming if joins else stored, link=None if joins else incoming,
                                order_id=self.id.id):
            return await method(self, *args)

    return with_span


class OrderActor(Actor, OrderActorInterface, Remindable):
    @traced
    async def place(self, data: dict) -> dict:
        try:
            request = OrderRequest.model_validate(data)
        except ValidationError as error:
            raise OrderError("INVALID_ARGUMENT", describe(error)) from None
        if request.order_id != self.id.id:
            raise OrderError("INVALID_ARGUMENT", "order_id does not match the actor id")

        existing = await self._load()
        if existing is not None:
            if existing.request != request:
                raise OrderError("ALREADY_EXISTS", f"order {request.order_id} exists with different content")
            await self._ensure_saga(existing)  # a crash may have come between save and schedule
            return existing.model_dump(mode="json")

        order = OrderState(
            request=request,
            saga_instance_id=saga_instance_id(request.order_id),
            timeline=[TimelineEntry(at=now_iso(), step="place", outcome="PLACED", key="place")],
            trace_parent=observability.current_traceparent(),
        )
        await self._save(order)
        await self._start_saga(order)  # new: no saga can exist yet, so no need to look first
        await self.register_reminder(DEADLINE_REMINDER, b"", timedelta(seconds=_settings.order_deadline_s))
        await self._note_in_index(order)
        log.info("order=%s step=place outcome=PLACED total_cents=%d lines=%d", order.order_id,
                 request.total_cents, len(request.items))
        return order.model_dump(mode="json")

    async def get(self) -> dict | None:
        order = await self._load()
        return order.model_dump(mode="json") if order else None

    @traced
    async def cancel(self, data: dict) -> dict:
        order = await self._require()
        reason = str((data or {}).get("reason") or "cancelled by request")[:200]
        if order.cancel_requested:
            return order.model_dump(mode="json")  # a repeat: already on its way to CANCELLED
        if order.status not in CANCELLABLE:
            why = "the shipment is being created" if order.status == OrderStatus.SHIPPING else f"it is {order.status}"
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} can no longer be cancelled: {why}")
        order.cancel_requested = True
        order.timeline.append(TimelineEntry(at=now_iso(), step="cancel", outcome="REQUESTED", detail=reason,
                                            key="cancel:REQUESTED"))
        await self._save(order)
        await workflow_client().raise_workflow_event(order.saga_instance_id, CANCEL_EVENT, data={"reason": reason})
        log.info("order=%s step=cancel outcome=REQUESTED detail=%s", order.order_id, reason)
        return order.model_dump(mode="json")

    @traced
    async def decide(self, data: dict) -> dict:
        """An approval decision. The first one wins: a repeat of it is a no-op, and so is a
        contrary one while the saga has not acted yet.

        Refused (NOT_FOUND, FAILED_PRECONDITION) for unknown orders and orders that are not
        waiting for approval, including a contrary decision that comes after the saga acted;
        accepted ahead of the gate, where the saga finds it buffered.
        """
        order = await self._require()
        decision, approver = data["decision"], data.get("approver", "")
        if order.decision and (order.decision == decision or order.status in BEFORE_APPROVAL):
            return {"outcome": "duplicate", "decision": order.decision}
        if order.decision:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} was already decided ({order.decision}) and is {order.status}")
        if not needs_approval(order.request.total_cents, _settings.approval_threshold_cents):
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} does not need approval")
        if order.status not in BEFORE_APPROVAL:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} is not waiting for approval: {order.status}")
        # Raise first, then remember: a crash in between re-raises on redelivery, and the saga
        # takes the first event it gets, so the outcome is the same.
        await workflow_client().raise_workflow_event(order.saga_instance_id, APPROVAL_EVENT, data=data)
        order.decision = decision
        order.timeline.append(TimelineEntry(at=now_iso(), step="approval", outcome="RECEIVED",
                                            detail=f"{decision} by {approver}".strip(), key="approval:RECEIVED"))
        await self._save(order)
        return {"outcome": "accepted", "decision": decision}

    @traced
    async def record_steps(self, data: dict) -> dict:
        """Append timeline entries, each once per key, in one turn and one state write; an
        entry with a `status` moves the order's status (and reason) with it.

        Answers the saga whether a cancel was accepted: entering an in-flight status is then
        refused, so the saga unwinds instead of charging or shipping.
        """
        order = await self._require()
        changed = False
        for record in data["records"]:
            status = OrderStatus(record["status"]) if record.get("status") else None
            if order.cancel_requested and status in CANCELLABLE | {OrderStatus.SHIPPING}:
                continue  # refused: the answer below tells the saga to unwind
            key = record.get("key") or ""
            if key and any(e.key == key for e in order.timeline):
                continue  # a retried activity: already recorded
            order.timeline.append(TimelineEntry(at=now_iso(), step=record["step"], outcome=record["outcome"],
                                                detail=record.get("detail", ""), key=key))
            if status and not order.status.terminal:
                order.status = status
                order.reason = record.get("reason", "")
                if status == OrderStatus.NEEDS_ATTENTION and data.get("unfinished"):
                    order.unfinished = Unfinished.model_validate(data["unfinished"])
                elif status.terminal:
                    order.unfinished = None
            if record.get("tracking_number"):
                order.tracking_number = record["tracking_number"]
            changed = True
        if changed:
            await self._save(order)
            if order.status.terminal:
                await self._drop_deadline(order)
        if order.status.terminal:  # also on a retried call: the index write may be what failed
            await self._note_in_index(order)
        return {"cancel_requested": order.cancel_requested}

    @traced
    async def retry(self, data: dict) -> dict:
        """RetryOrder: run again what the saga left unfinished, in a workflow of its own, and end
        the order as the saga would have. Only for NEEDS_ATTENTION; a repeat while the retry runs
        answers with the order (and restarts the retry's workflow if a crash lost it)."""
        order = await self._require()
        by = str((data or {}).get("by") or "unknown")[:100]
        if order.status != OrderStatus.NEEDS_ATTENTION:
            if order.retries and not order.status.terminal:
                await self._ensure_retry(order, by)
                return order.model_dump(mode="json")
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} is {order.status}: only an order that NEEDS_ATTENTION is retried")
        if order.unfinished is None:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} does not say what is left to do; close it by hand instead")
        order.retries += 1
        order.timeline.append(TimelineEntry(at=now_iso(), step="retry", outcome="REQUESTED", detail=f"by {by}",
                                            key=f"retry {order.retries}:REQUESTED"))
        order.status = order.unfinished.resume_status
        order.saga_instance_id = retry_instance_id(order.order_id, order.retries)
        await self._save(order)  # first: a crash before the start is mended by a repeated RetryOrder
        await self._start_retry(order, by)
        await self._note_in_index(order)
        log.info("order=%s step=retry outcome=REQUESTED attempt=%d by=%s", order.order_id, order.retries, by)
        return order.model_dump(mode="json")

    @traced
    async def close(self, data: dict) -> dict:
        """CloseOrder: a person did by hand what the saga left unfinished; the order ends as the
        saga would have ended it, and the timeline says who closed it and why. Only for
        NEEDS_ATTENTION. No workflow runs."""
        order = await self._require()
        by = str((data or {}).get("by") or "unknown")[:100]
        note = str((data or {}).get("note") or "")[:500]
        if order.status != OrderStatus.NEEDS_ATTENTION:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} is {order.status}: only an order that NEEDS_ATTENTION is closed")
        if not note.strip():
            raise OrderError("INVALID_ARGUMENT", "note: say what was done by hand")
        ending = order.unfinished.ending if order.unfinished else None
        if ending is None:
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} does not say how it would have ended")
        order.status, order.reason = ending.status, ending.reason
        order.tracking_number = ending.tracking_number or order.tracking_number
        order.unfinished = None
        order.timeline.append(TimelineEntry(at=now_iso(), step="close", outcome=f"BY_HAND {ending.status}",
                                            detail=f"by {by}: {note}", key="close:BY_HAND"))
        await self._save(order)
        await events.publish(LifecycleEvent(order_id=order.order_id, type=ending.status.lower(), status=ending.status,
                                            reason=ending.reason, detail=f"closed by hand by {by}",
                                            total_cents=order.request.total_cents))
        await self._note_in_index(order)
        log.info("order=%s step=close outcome=%s by=%s note=%s", order.order_id, ending.status, by, note)
        return order.model_dump(mode="json")

    async def note_stalled(self, data: dict) -> dict:
        """The order's workflow is STALLED (its code version is not deployed): say so once on the
        timeline, with the version, instead of waiting silently."""
        order = await self._require()
        instance = order.saga_instance_id
        key = f"stalled:{instance}"
        if not any(entry.key == key for entry in order.timeline):
            version = str((data or {}).get("version") or "unknown")[:100]
            order.timeline.append(TimelineEntry(
                at=now_iso(), step="saga", outcome="STALLED", key=key,
                detail=f"{instance} runs version {version} of its workflow, which this release does not deploy: "
                       "deploy it again (README, Changing the saga)"))
            await self._save(order)
            log.warning("order=%s step=saga outcome=STALLED instance=%s version=%s", order.order_id, instance, version)
        return order.model_dump(mode="json")

    async def receive_reminder(self, name: str, state: bytes, due_time: timedelta, period: timedelta,
                               ttl: timedelta | None = None) -> None:
        """The deadline passed: flag an order still in flight, on its timeline and as an event."""
        order = await self._load()
        if name != DEADLINE_REMINDER or order is None or order.status.terminal:
            return
        if not any(e.key == "deadline" for e in order.timeline):
            order.timeline.append(TimelineEntry(at=now_iso(), step="deadline", outcome="EXCEEDED",
                                                detail=f"still {order.status}", key="deadline"))
            await self._save(order)
        event = LifecycleEvent(order_id=order.order_id, type="overdue", status=order.status,
                               total_cents=order.request.total_cents, detail=f"still {order.status}")
        await events.publish(event)
        log.warning("order=%s step=deadline outcome=EXCEEDED status=%s", order.order_id, order.status)

    async def _ensure_saga(self, order: OrderState) -> None:
        """Start the saga a crash prevented. Only while the order is PLACED: a saga that ran
        has moved it on, and its finished workflow may since have been purged (retention)."""
        if order.status != OrderStatus.PLACED:
            return
        if await workflow_client().get_workflow_state(order.saga_instance_id, fetch_payloads=False) is None:
            await self._start_saga(order)

    async def _start_saga(self, order: OrderState) -> None:
        """Announce the order, then start its saga (the latest version). In that order: a crash
        in between leaves no saga, and the repeated PlaceOrder that mends it (`_ensure_saga`)
        announces again, which consumers drop by the event's stable id. A broker that is down
        refuses the order (UNAVAILABLE) until it is back, like a store that is down."""
        await events.publish(LifecycleEvent(order_id=order.order_id, type="placed", status=OrderStatus.PLACED.value,
                                            total_cents=order.request.total_cents))
        saga_input = SagaInput(
            order=order.request,
            approval_threshold_cents=_settings.approval_threshold_cents,
            approval_timeout_s=_settings.approval_timeout_s,
            step_timeout_s=_settings.step_timeout_s,
        )
        await schedule_workflow(workflow_client(), SAGA_NAME, saga_input.model_dump(mode="json"),
                                order.saga_instance_id)

    async def _start_retry(self, order: OrderState, by: str) -> None:
        retry_input = RetryInput(order=order.request, unfinished=order.unfinished, attempt=order.retries,
                                 retried_by=by, step_timeout_s=_settings.step_timeout_s)
        await schedule_workflow(workflow_client(), RETRY_SAGA_NAME, retry_input.model_dump(mode="json"),
                                order.saga_instance_id)

    async def _ensure_retry(self, order: OrderState, by: str) -> None:
        if order.status.terminal:  # the retry ran (and its workflow may be purged)
            return
        if await workflow_client().get_workflow_state(order.saga_instance_id, fetch_payloads=False) is None:
            await self._start_retry(order, by)

    async def _drop_deadline(self, order: OrderState) -> None:
        """A finished order needs no deadline: without this, every order would leave a reminder
        in the scheduler until its deadline. Best effort: a reminder left behind finds the order
        terminal and does nothing."""
        try:
            await self.unregister_reminder(DEADLINE_REMINDER)
        except Exception as error:  # noqa: BLE001
            log.warning("order=%s step=deadline outcome=NOT_DROPPED detail=%s", order.order_id, error)

    async def _note_in_index(self, order: OrderState) -> None:
        """Best effort: the index only serves ListOrders, never the saga."""
        label = order.status.value if order.status.terminal else index.IN_FLIGHT
        try:
            await index.note(dapr_client(), order.order_id, label)
        except Exception as error:  # noqa: BLE001
            log.warning("order=%s step=index outcome=FAILED detail=%s", order.order_id, error)

    async def _require(self) -> OrderState:
        order = await self._load()
        if order is None:
            raise OrderError("NOT_FOUND", f"order {self.id.id} does not exist")
        return order

    # Stored as one JSON string: the SDK's default serializer turns strings that look like
    # datetimes back into datetime objects, which the timeline's ISO strings would trip over.
    async def _load(self) -> OrderState | None:
        found, value = await self._state_manager.try_get_state(STATE_KEY)
        order = OrderState.model_validate_json(value) if found else None
        self._stored_status = order.status if order else None  # what `_save` changes from
        return order

    async def _save(self, order: OrderState) -> None:
        await self._state_manager.set_state(STATE_KEY, order.model_dump_json())
        await self._state_manager.save_state()
        admission.current().note(order.order_id, order.status)  # every status change comes here
        metrics.IN_FLIGHT.note(order.order_id, getattr(self, "_stored_status", None), order.status, order.reason)
        self._stored_status = order.status


