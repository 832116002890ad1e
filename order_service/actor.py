"""OrderActor: one virtual actor per order, owner of the order's identity, status and timeline.

It announces the order (`placed` on order-events), starts the saga workflow and returns: it never
awaits the saga (an activity calls back into
this actor, and an actor serves one turn at a time). Activities record steps through
`record_steps`, idempotent per key because activities run at least once. Because the actor
serves one call at a time, it is also the race-free gate for cancels: a cancel is accepted
only while the order has not entered SHIPPING, and once accepted the saga may not enter it.

Every method is safe to stop at any point (a crash, a sidecar or broker that fails mid-way):
what a method owes the world outside the order's state (an event, the index label, the cancel
event for the saga) is saved with the order before it is paid, and paid again until it is
(`_settle`); an order's `checkup` reminder, armed before anything else is done, finds and
mends what a stop left: a saga that never started, something still owed, a saga that ended
without telling the order, an order past its deadline.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta, timezone

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from pydantic import ValidationError

from apphost import observability
from order_service import admission, metrics
from order_service.actor_host import incoming_traceparent
from order_service.actor_ports import ActorPorts, DaprPorts, SagaRun
from order_service.domain import (
    BEFORE_APPROVAL,
    CANCELLABLE,
    IN_FLIGHT_LABEL,
    Ending,
    FailureReason,
    LifecycleEvent,
    OrderRequest,
    OrderState,
    OrderStatus,
    TimelineEntry,
    Unfinished,
    describe,
    retry_instance_id,
    saga_instance_id,
)
from order_service.messages import OrderUpdate, RetryInput, SagaInput
from order_service.retry_saga import RETRY_SAGA_NAME
from order_service.saga import APPROVAL_EVENT, CANCEL_EVENT, SAGA_NAME
from order_service.settings import Settings

ACTOR_TYPE = "OrderActor"
STATE_KEY = "order"
# The order's check-up (see the module's docstring). Orders placed before it came in have one
# named "deadline", which the check-up serves as well.
CHECKUP_REMINDER = "checkup"
OLD_DEADLINE_REMINDER = "deadline"
# Pays what the order still owes after a call failed, soon and for a while (then the check-up).
SETTLE_REMINDER = "settle"
SETTLE_EVERY = timedelta(seconds=15)
SETTLE_FOR = timedelta(hours=1)
# Engine statuses of a workflow that will not move on by itself.
_SAGA_ENDED = {"COMPLETED", "FAILED", "TERMINATED"}

log = logging.getLogger("order_service.actor")
_settings = Settings()
_ports: ActorPorts | None = None


def configure(settings: Settings, ports: ActorPorts | None = None) -> None:
    """Called once by the composition root (and by tests, with fakes): the settings for new
    sagas, and the way out to the sidecar."""
    global _settings, _ports
    _settings = settings
    _ports = ports


def ports() -> ActorPorts:
    global _ports
    if _ports is None:
        _ports = DaprPorts()
    return _ports


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
            await self._mend(existing)  # a stop may have come anywhere in the first PlaceOrder
            return existing.model_dump(mode="json")

        # In this order, each step safe to stop after: the check-up first (it mends whatever a
        # stop leaves), the index next (the order is listed as soon as it exists), then the
        # order itself, owing its `placed` event, which goes out before the saga starts.
        await self._arm_checkup()
        await ports().note_in_index(request.order_id, IN_FLIGHT_LABEL)
        at = now_iso()
        order = OrderState(
            request=request,
            saga_instance_id=saga_instance_id(request.order_id),
            timeline=[TimelineEntry(at=at, step="place", outcome="PLACED", key="place")],
            trace_parent=observability.current_traceparent(),
            placed_at=at,
            approval_threshold_cents=_settings.approval_threshold_cents,
            owed_events=[_placed_event(request)],
            indexed_as=IN_FLIGHT_LABEL,
        )
        await self._save(order)
        await self._settle(order, strict=True)  # a broker that is down refuses the order (UNAVAILABLE)
        await self._start_saga(order)  # new: no saga can exist yet, so no need to look first
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
        if order.cancel_requested:  # a repeat: on its way to CANCELLED, once the saga is told
            await self._settle(order, strict=True)
            return order.model_dump(mode="json")
        if order.status not in CANCELLABLE:
            why = "the shipment is being created" if order.status == OrderStatus.SHIPPING else f"it is {order.status}"
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} can no longer be cancelled: {why}")
        # Saved first: from here the actor's gate keeps the saga from charging or shipping.
        # Then the saga is told (it may be waiting at the approval gate); until it is, the order
        # owes it the event: a repeated cancel, or the settle reminder, raises it again.
        order.cancel_requested = True
        order.timeline.append(TimelineEntry(at=now_iso(), step="cancel", outcome="REQUESTED", detail=reason,
                                            key="cancel:REQUESTED"))
        await self._save(order)
        log.info("order=%s step=cancel outcome=REQUESTED detail=%s", order.order_id, reason)
        await self._settle(order, strict=True)
        return order.model_dump(mode="json")

    @traced
    async def decide(self, data: dict) -> dict:
        """An approval decision. The first one wins: a repeat of it is a no-op, and so is a
        contrary one while the saga has not acted yet.

        Refused (NOT_FOUND, FAILED_PRECONDITION) for unknown orders and orders that are not
        waiting for approval, including a contrary decision that comes after the saga acted;
        accepted ahead of the gate, where the saga finds it buffered. Whether the order waits
        for approval is judged by the threshold frozen with it, the one its saga runs with.
        """
        order = await self._require()
        decision, approver = data["decision"], data.get("approver", "")
        if order.decision and (order.decision == decision or order.status in BEFORE_APPROVAL):
            return {"outcome": "duplicate", "decision": order.decision}
        if order.decision:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} was already decided ({order.decision}) and is {order.status}")
        if order.status not in BEFORE_APPROVAL:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} is not waiting for approval: {order.status}")
        if not order.awaits_decision(_settings.approval_threshold_cents):
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} does not need approval")
        # Raise first, then remember: a crash in between re-raises on redelivery, and the saga
        # takes the first event it gets, so the outcome is the same.
        await ports().raise_event(order.saga_instance_id, APPROVAL_EVENT, data)
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
        if _apply(order, data["records"], data.get("unfinished")):
            await self._save(order)
            if order.status.terminal:
                await self._drop_checkup(order)
        await self._settle(order)  # also on a retried call: the index label may be what failed
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
        await self._arm_checkup()  # in flight again: mended like a new order if a stop comes
        order.retries += 1
        order.timeline.append(TimelineEntry(at=now_iso(), step="retry", outcome="REQUESTED", detail=f"by {by}",
                                            key=f"retry {order.retries}:REQUESTED"))
        order.status = order.unfinished.resume_status
        order.saga_instance_id = retry_instance_id(order.order_id, order.retries)
        await self._save(order)  # first: a crash before the start is mended by a repeated RetryOrder
        await self._start_retry(order, by)
        await self._settle(order)
        log.info("order=%s step=retry outcome=REQUESTED attempt=%d by=%s", order.order_id, order.retries, by)
        return order.model_dump(mode="json")

    @traced
    async def close(self, data: dict) -> dict:
        """CloseOrder: a person did by hand what the saga left unfinished; the order ends as the
        saga would have ended it, and the timeline says who closed it and why. Only for
        NEEDS_ATTENTION (a repeat of a close answers with the closed order). No workflow runs.
        The closing is saved with the event that announces it, which is owed until the broker
        takes it: a broker that is down delays the event, never the close."""
        order = await self._require()
        by = str((data or {}).get("by") or "unknown")[:100]
        note = str((data or {}).get("note") or "")[:500]
        if not note.strip():
            raise OrderError("INVALID_ARGUMENT", "note: say what was done by hand")
        if any(entry.key == "close:BY_HAND" for entry in order.timeline):
            await self._settle(order)
            return order.model_dump(mode="json")
        if order.status != OrderStatus.NEEDS_ATTENTION:
            raise OrderError("FAILED_PRECONDITION",
                             f"order {order.order_id} is {order.status}: only an order that NEEDS_ATTENTION is closed")
        ending = order.unfinished.ending if order.unfinished else None
        if ending is None:
            raise OrderError("FAILED_PRECONDITION", f"order {order.order_id} does not say how it would have ended")
        order.status, order.reason = ending.status, ending.reason
        order.tracking_number = ending.tracking_number or order.tracking_number
        order.unfinished = None
        order.timeline.append(TimelineEntry(at=now_iso(), step="close", outcome=f"BY_HAND {ending.status}",
                                            detail=f"by {by}: {note}", key="close:BY_HAND"))
        order.owed_events.append(LifecycleEvent(
            order_id=order.order_id, type=ending.status.lower(), status=ending.status, reason=ending.reason,
            detail=f"closed by hand by {by}", total_cents=order.request.total_cents))
        await self._save(order)
        await self._settle(order)
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
        order = await self._load()
        if order is None:
            return  # a PlaceOrder that stopped before the order was saved: nothing to mend
        if name == SETTLE_REMINDER:
            await self._settle(order)
        elif name in (CHECKUP_REMINDER, OLD_DEADLINE_REMINDER):
            await self._check_up(order)

    # ---- mending -------------------------------------------------------------------------

    async def _check_up(self, order: OrderState) -> None:
        """What the check-up reminder does: pay what is owed, start a saga that never started,
        take note of a saga that ended without telling the order, flag an order past its
        deadline (once, on its timeline and as an `overdue` event)."""
        await self._mend(order)
        if order.status.terminal:
            return
        if order.status != OrderStatus.PLACED:
            run = await ports().saga_run(order.saga_instance_id)
            if run is None or run.status in _SAGA_ENDED:
                await self._adopt_lost_ending(order, run)
                return
        if _past(order.placed_time, _settings.order_deadline_s) and \
                not any(e.key == "deadline" for e in order.timeline):
            order.timeline.append(TimelineEntry(at=now_iso(), step="deadline", outcome="EXCEEDED",
                                                detail=f"still {order.status}", key="deadline"))
            order.owed_events.append(LifecycleEvent(order_id=order.order_id, type="overdue", status=order.status,
                                                    total_cents=order.request.total_cents,
                                                    detail=f"still {order.status}"))
            await self._save(order)
            log.warning("order=%s step=deadline outcome=EXCEEDED status=%s", order.order_id, order.status)
            await self._settle(order)

    async def _mend(self, order: OrderState) -> None:
        """Whatever a stop in PlaceOrder (or later) left undone: what is owed, and the saga."""
        await self._settle(order, strict=order.status == OrderStatus.PLACED)
        await self._ensure_saga(order)

    async def _adopt_lost_ending(self, order: OrderState, run: SagaRun | None) -> None:
        """The saga ended (or is gone) while the order is still in flight: its last writes never
        reached the order. A saga leaves those as its custom status (order_service/saga.py), and
        they are recorded now, as the saga meant them. Without them nothing runs on by itself, so
        a person must look: NEEDS_ATTENTION, saying what the engine knows."""
        left = _left_update(run)
        if left is not None and _apply(order, [r.model_dump() for r in left.records],
                                       left.unfinished.model_dump(mode="json") if left.unfinished else None) \
                and order.status.terminal:
            if left.event:
                order.owed_events.append(left.event)
            await self._save(order)
            log.warning("order=%s step=saga outcome=RECORDED_LATE status=%s detail=what its saga could not record",
                        order.order_id, order.status)
            await self._drop_checkup(order)
            await self._settle(order)
            return
        engine_status, output = (run.status, run.output) if run else ("GONE", "")
        returned = output.strip('"') if output else ""
        if returned in (OrderStatus.COMPLETED, OrderStatus.CANCELLED):
            ending = Ending(status=returned, tracking_number=order.tracking_number)
        else:
            ending = Ending(status=OrderStatus.FAILED, reason=FailureReason.INTERNAL_ERROR)
        detail = (f"its saga {order.saga_instance_id} is {engine_status}"
                  f"{f' (returned {returned})' if returned else ''} but never recorded its end here: "
                  "check the stock, the payment and the shipment by hand, then close or retry the order")
        order.timeline.append(TimelineEntry(at=now_iso(), step="saga", outcome="LOST", detail=detail,
                                            key=f"lost:{order.saga_instance_id}"))
        order.status, order.reason = OrderStatus.NEEDS_ATTENTION, ""
        order.unfinished = Unfinished(calls=[], ending=ending, resume_status=OrderStatus.COMPENSATING)
        order.owed_events.append(LifecycleEvent(order_id=order.order_id, type="needs_attention",
                                                status=OrderStatus.NEEDS_ATTENTION, detail=detail[:200],
                                                total_cents=order.request.total_cents))
        await self._save(order)
        log.error("order=%s step=saga outcome=LOST detail=%s", order.order_id, detail)
        await self._settle(order)

    async def _settle(self, order: OrderState, strict: bool = False) -> None:
        """Pay what the order owes the world, in order: its index label, its events (each under a
        stable id, so a second copy is dropped by consumers), the cancel its saga must hear of.
        What fails stays owed, saved with the order, and the settle reminder tries again;
        `strict` raises it to the caller as well (UNAVAILABLE), who must not go on without it."""
        if not order.owes_anything:
            return
        try:
            if order.indexed_as != order.index_label:
                await ports().note_in_index(order.order_id, order.index_label)
                order.indexed_as = order.index_label
            while order.owed_events:
                await ports().publish(order.owed_events[0])
                order.owed_events.pop(0)
            if order.owes_cancel:
                await ports().raise_event(order.saga_instance_id, CANCEL_EVENT,
                                          {"reason": _cancel_reason(order)})
                order.cancel_raised = True
        except Exception as error:  # noqa: BLE001 - the sidecar, the broker or the engine: owed still
            await self._save(order)  # what was paid is not paid twice
            log.warning("order=%s step=settle outcome=OWED detail=%s", order.order_id, _one_line(error))
            await self._arm_settle(order)
            if strict:
                raise OrderError("UNAVAILABLE", f"order {order.order_id}: {_one_line(error)}") from error
            return
        await self._save(order)

    async def _ensure_saga(self, order: OrderState) -> None:
        """Start the saga a stop prevented. Only while the order is PLACED: a saga that ran
        has moved it on, and its finished workflow may since have been purged (retention)."""
        if order.status != OrderStatus.PLACED or order.owed_events:
            return  # `placed` goes out before the saga starts
        if await ports().saga_run(order.saga_instance_id) is None:
            await self._start_saga(order)

    async def _start_saga(self, order: OrderState) -> None:
        """Start the order's saga (the latest version), with the threshold frozen with it."""
        saga_input = SagaInput(
            order=order.request,
            approval_threshold_cents=order.approval_threshold_cents
            if order.approval_threshold_cents is not None else _settings.approval_threshold_cents,
            approval_timeout_s=_settings.approval_timeout_s,
            step_timeout_s=_settings.step_timeout_s,
        )
        await ports().start_workflow(SAGA_NAME, saga_input.model_dump(mode="json"), order.saga_instance_id)

    async def _start_retry(self, order: OrderState, by: str) -> None:
        retry_input = RetryInput(order=order.request, unfinished=order.unfinished, attempt=order.retries,
                                 retried_by=by, step_timeout_s=_settings.step_timeout_s)
        await ports().start_workflow(RETRY_SAGA_NAME, retry_input.model_dump(mode="json"), order.saga_instance_id)

    async def _ensure_retry(self, order: OrderState, by: str) -> None:
        if order.status.terminal:  # the retry ran (and its workflow may be purged)
            return
        if await ports().saga_run(order.saga_instance_id) is None:
            await self._start_retry(order, by)

    # ---- reminders -----------------------------------------------------------------------

    async def _arm_checkup(self) -> None:
        """The check-up: soon after placing (a saga that never started is started then), then
        once per deadline while the order is in flight; it expires by itself, so it never has
        to be deleted as it fires. An order that ends drops it (`_drop_checkup`)."""
        deadline = timedelta(seconds=_settings.order_deadline_s)
        first = min(timedelta(seconds=_settings.start_check_s), deadline)
        await self.register_reminder(CHECKUP_REMINDER, b"", first, deadline, ttl=3 * deadline + first)

    async def _arm_settle(self, order: OrderState) -> None:
        try:
            await self.register_reminder(SETTLE_REMINDER, b"", SETTLE_EVERY, SETTLE_EVERY, ttl=SETTLE_FOR)
        except Exception as error:  # noqa: BLE001 - the check-up (or the next call) pays it then
            log.warning("order=%s step=settle outcome=NOT_ARMED detail=%s", order.order_id, _one_line(error))

    async def _drop_checkup(self, order: OrderState) -> None:
        """A finished order needs no check-up: without this, every order would leave a reminder
        in the scheduler until it expires. Best effort: a check-up left behind finds the order
        terminal and does nothing."""
        for name in [CHECKUP_REMINDER] + ([OLD_DEADLINE_REMINDER] if not order.placed_at else []):
            try:
                await self.unregister_reminder(name)
            except Exception as error:  # noqa: BLE001
                log.warning("order=%s step=checkup outcome=NOT_DROPPED detail=%s", order.order_id, error)

    # ---- state ---------------------------------------------------------------------------

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


def _apply(order: OrderState, records: list[dict], unfinished: dict | None) -> bool:
    """Append the saga's timeline entries, each once per key; an entry with a `status` moves the
    order's status (and reason) with it, unless a cancel was accepted and the status is one it
    keeps the saga out of. Whether anything changed."""
    changed = False
    for record in records:
        status = OrderStatus(record["status"]) if record.get("status") else None
        if order.cancel_requested and status in CANCELLABLE | {OrderStatus.SHIPPING}:
            continue  # refused: record_steps' answer tells the saga to unwind
        key = record.get("key") or ""
        if key and any(e.key == key for e in order.timeline):
            continue  # a retried activity: already recorded
        order.timeline.append(TimelineEntry(at=now_iso(), step=record["step"], outcome=record["outcome"],
                                            detail=record.get("detail", ""), key=key))
        if status and not order.status.terminal:
            order.status = status
            order.reason = record.get("reason", "")
            if status == OrderStatus.NEEDS_ATTENTION and unfinished:
                order.unfinished = Unfinished.model_validate(unfinished)
            elif status.terminal:
                order.unfinished = None
        if record.get("tracking_number"):
            order.tracking_number = record["tracking_number"]
        changed = True
    return changed


def _left_update(run: SagaRun | None) -> OrderUpdate | None:
    """The update a saga left as its custom status because the order never took it, if any."""
    if run is None or not run.custom_status:
        return None
    try:
        return OrderUpdate.model_validate_json(run.custom_status)
    except ValueError:
        return None


def _placed_event(request: OrderRequest) -> LifecycleEvent:
    return LifecycleEvent(order_id=request.order_id, type="placed", status=OrderStatus.PLACED.value,
                          total_cents=request.total_cents)


def _cancel_reason(order: OrderState) -> str:
    requested = [e for e in order.timeline if e.key == "cancel:REQUESTED"]
    return requested[-1].detail if requested else "cancelled by request"


def _past(iso_time: str, seconds: float) -> bool:
    if not iso_time:
        return True
    return datetime.now(timezone.utc) >= datetime.fromisoformat(iso_time) + timedelta(seconds=seconds)


def _one_line(error: Exception) -> str:
    text = getattr(error, "details", lambda: None)() if callable(getattr(error, "details", None)) else None
    return (text or str(error) or type(error).__name__).splitlines()[0][:300]
