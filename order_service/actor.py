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
from order_service import order_rules as rules
from order_service.actor_host import incoming_traceparent
from order_service.actor_ports import ActorPorts, DaprPorts, SagaRun
from order_service.domain import (
    OrderRequest,
    OrderState,
    OrderStatus,
    continuation_instance_id,
    describe,
)
from order_service.messages import DecidedInput, RetryInput, SagaInput
from order_service.sagas import (
    APPROVAL_EVENT,
    CANCEL_EVENT,
    DECIDED_SAGA_NAME,
    PARKING_VERSIONS,
    RETRY_SAGA_NAME,
    SAGA_NAME,
)
from order_service.settings import Settings
from order_service.sidecar import ActorRefusal

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
_saga_version = ""


def configure(settings: Settings, ports: ActorPorts | None = None, saga_version: str = "") -> None:
    """Called once by the composition root (and by tests, with fakes): the settings for new
    sagas, the way out to the sidecar, and the version new sagas run (the latest registered)."""
    global _settings, _ports, _saga_version
    _settings = settings
    _ports = ports
    _saga_version = saga_version


def ports() -> ActorPorts:
    global _ports
    if _ports is None:
        _ports = DaprPorts()
    return _ports


class OrderError(ActorRefusal):
    """A refused request. `code` is the gRPC status name the API maps it to; it reaches the
    caller as data the sidecar module reads (order_service/sidecar.py), never as text to parse."""


def refusals(method):
    """An actor method whose rules' refusals (order_rules.Refused) go back as OrderError."""
    @functools.wraps(method)
    async def refusing(self, *args):
        try:
            return await method(self, *args)
        except rules.Refused as refused:
            raise OrderError(refused.code, refused.message) from None
    return refusing


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

    @actormethod(name="settle")
    async def settle(self, data: dict) -> dict | None: ...


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
    """The shell over the order's rules (order_service/order_rules.py): load the order, ask the
    rules, save it, then pay what it owes the world, in an order that is safe to stop anywhere."""

    @traced
    @refusals
    async def place(self, data: dict) -> dict:
        try:
            request = OrderRequest.model_validate(data)
        except ValidationError as error:
            raise OrderError("INVALID_ARGUMENT", describe(error)) from None
        if request.order_id != self.id.id:
            raise OrderError("INVALID_ARGUMENT", "order_id does not match the actor id")
        existing = await self._load()
        if not rules.is_new(existing, request):
            await self._mend(existing)  # a stop may have come anywhere in the first PlaceOrder
            return existing.model_dump(mode="json")

        # In this order, each step safe to stop after: the check-up first (it mends whatever a
        # stop leaves), then the order itself, owing its row in the orders index and its
        # `placed` event, both paid before the saga starts.
        await self._arm_checkup()
        order = rules.new_order(request, at=now_iso(), trace_parent=observability.current_traceparent(),
                                threshold_cents=_settings.approval_threshold_cents, saga_version=_saga_version)
        await self._save(order)
        await self._settle(order, strict=True)  # a store or broker that is down refuses the order (UNAVAILABLE)
        await self._start_saga(order)  # new: no saga can exist yet, so no need to look first
        log.info("order=%s step=place outcome=PLACED total_cents=%d lines=%d", order.order_id,
                 request.total_cents, len(request.items))
        return order.model_dump(mode="json")

    async def get(self) -> dict | None:
        order = await self._load()
        return order.model_dump(mode="json") if order else None

    @traced
    @refusals
    async def cancel(self, data: dict) -> dict:
        order = await self._require()
        reason = str((data or {}).get("reason") or "cancelled by request")[:200]
        # Saved first: from here the actor's gate keeps the saga from charging or shipping. Then
        # the saga is told (it may be waiting at the approval gate); until it is, the order owes
        # it the event: a repeated cancel, or the settle reminder, raises it again.
        if rules.cancel(order, reason, now_iso()):
            await self._save(order)
            log.info("order=%s step=cancel outcome=REQUESTED detail=%s", order.order_id, reason)
        await self._settle(order, strict=True)
        return order.model_dump(mode="json")

    @traced
    @refusals
    async def decide(self, data: dict) -> dict:
        """An approval decision (order_rules.decision_verdict says which ones count)."""
        order = await self._require()
        decision, approver = data["decision"], data.get("approver", "")
        if rules.decision_verdict(order, decision, _settings.approval_threshold_cents) == "duplicate":
            await self._settle(order)  # a repeat also starts the second half a stop kept from starting
            return {"outcome": "duplicate", "decision": order.decision}
        # A saga that waits in the engine (v1, v2) is told first, then the decision is
        # remembered: a crash in between re-raises on redelivery, and the saga takes the first
        # event it gets. A saga that parks (v3) waits for nothing: the decision is saved, and
        # starts the saga's second half once the order is parked (now, or when it gets there).
        if not order.parked and order.saga_version not in PARKING_VERSIONS:
            await ports().raise_event(order.saga_instance_id, APPROVAL_EVENT, data)
        rules.remember_decision(order, decision, approver, now_iso())
        await self._save(order)
        await self._settle(order)
        return {"outcome": "accepted", "decision": decision}

    @traced
    @refusals
    async def record_steps(self, data: dict) -> dict:
        """Append the saga's timeline entries (and status), in one turn and one state write.
        Answers the saga whether a cancel was accepted: entering an in-flight status is then
        refused (order_rules.may_enter), so the saga unwinds instead of charging or shipping."""
        order = await self._require()
        was_parked = order.parked
        if rules.apply_records(order, data["records"], data.get("unfinished"), now_iso()):
            await self._save(order)
            if order.status.terminal:
                await self._drop_checkup(order)
            elif order.parked and not was_parked and not order.continuation:
                await self._arm_checkup(at=order.approval_due)  # the check-up ends the wait
        await self._settle(order)  # also on a retried call: the index row may be what failed
        return {"cancel_requested": order.cancel_requested}

    @traced
    @refusals
    async def retry(self, data: dict) -> dict:
        """RetryOrder: run again what the saga left unfinished, in a workflow of its own, and end
        the order as the saga would have. A repeat while the retry runs answers with the order
        (and restarts the retry's workflow if a crash lost it)."""
        order = await self._require()
        by = str((data or {}).get("by") or "unknown")[:100]
        if rules.retry_verdict(order) == "running":
            await self._ensure_retry(order, by)
            return order.model_dump(mode="json")
        await self._arm_checkup()  # in flight again: mended like a new order if a stop comes
        rules.start_retry(order, by, now_iso())
        await self._save(order)  # first: a crash before the start is mended by a repeated RetryOrder
        await self._start_retry(order, by)
        await self._settle(order)
        log.info("order=%s step=retry outcome=REQUESTED attempt=%d by=%s", order.order_id, order.retries, by)
        return order.model_dump(mode="json")

    @traced
    @refusals
    async def close(self, data: dict) -> dict:
        """CloseOrder: a person did by hand what the saga left unfinished. No workflow runs. The
        closing is saved with the event that announces it, which is owed until the broker takes
        it: a broker that is down delays the event, never the close."""
        order = await self._require()
        by = str((data or {}).get("by") or "unknown")[:100]
        note = str((data or {}).get("note") or "")[:500]
        if rules.close(order, by, note, now_iso()):
            await self._save(order)
            log.info("order=%s step=close outcome=%s by=%s note=%s", order.order_id, order.status, by, note)
        await self._settle(order)
        return order.model_dump(mode="json")

    @refusals
    async def note_stalled(self, data: dict) -> dict:
        """The order's workflow is STALLED (its code version is not deployed): say so once on the
        timeline, with the version, instead of waiting silently."""
        order = await self._require()
        version = str((data or {}).get("version") or "unknown")[:100]
        if rules.note_stalled(order, version, now_iso()):
            await self._save(order)
            log.warning("order=%s step=saga outcome=STALLED instance=%s version=%s", order.order_id,
                        order.saga_instance_id, version)
        return order.model_dump(mode="json")

    async def settle(self, data: dict | None = None) -> dict | None:
        """Pay what the order still owes (its index row, its events, the start of its second
        half): the stuck scan asks orders whose row is of an older release to write it."""
        order = await self._load()
        if order is not None:
            await self._settle(order)
        return order.model_dump(mode="json") if order else None

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
        if order.parked:  # no workflow is in charge: the check-up ends the wait when it is due
            if rules.time_out(order, _past(order.approval_due, 0), now_iso()):
                await self._save(order)
                log.info("order=%s step=approval outcome=WAIT_ENDED due=%s", order.order_id, order.approval_due)
                await self._settle(order)
            elif not order.continuation:
                await self._purge_first_half(order)
        elif order.status != OrderStatus.PLACED:
            run = await ports().saga_run(order.saga_instance_id)
            if run is None or run.status in _SAGA_ENDED:
                await self._adopt_lost_ending(order, run)
                return
        if rules.flag_overdue(order, _past(order.placed_time, _settings.order_deadline_s), now_iso()):
            await self._save(order)
            log.warning("order=%s step=deadline outcome=EXCEEDED status=%s", order.order_id, order.status)
            await self._settle(order)

    async def _mend(self, order: OrderState) -> None:
        """Whatever a stop in PlaceOrder (or later) left undone: what is owed, and the saga."""
        await self._settle(order, strict=order.status == OrderStatus.PLACED)
        await self._ensure_saga(order)

    async def _purge_first_half(self, order: OrderState) -> None:
        """A parked order's first workflow ended at the gate: its history goes now rather than
        after the retention time (its retention reminder with it), so a waiting order keeps
        nothing in the engine or the scheduler but its check-up. Best effort: the retention
        policy purges it otherwise."""
        try:
            run = await ports().saga_run(order.saga_instance_id)
            if run is not None and run.status in _SAGA_ENDED:
                await ports().purge_workflow(order.saga_instance_id)
        except Exception as error:  # noqa: BLE001 - the engine away: the retention policy does it
            log.info("order=%s step=checkup outcome=NOT_PURGED detail=%s", order.order_id, _one_line(error))

    async def _adopt_lost_ending(self, order: OrderState, run: SagaRun | None) -> None:
        """The saga ended (or is gone) while the order is still in flight (order_rules.adopt_lost_ending)."""
        engine_status, output, custom = (run.status, run.output, run.custom_status) if run else ("GONE", "", "")
        verdict = rules.adopt_lost_ending(order, engine_status, output, custom, now_iso())
        await self._save(order)
        if verdict == "recorded":
            log.warning("order=%s step=saga outcome=RECORDED_LATE status=%s detail=what its saga could not record",
                        order.order_id, order.status)
            await self._drop_checkup(order)
        else:
            log.error("order=%s step=saga outcome=LOST detail=%s", order.order_id, order.timeline[-1].detail)
        await self._settle(order)

    async def _settle(self, order: OrderState, strict: bool = False) -> None:
        """Pay what the order owes the world, in order: its index row, its events (each under a
        stable id, so a second copy is dropped by consumers), the cancel its saga must hear of,
        the start of a parked order's second half.
        What fails stays owed, saved with the order, and the settle reminder tries again;
        `strict` raises it to the caller as well (UNAVAILABLE), who must not go on without it."""
        if not order.owes_anything:
            return
        try:
            await self._pay_row(order)
            while order.owed_events:
                await ports().publish(order.owed_events[0])
                order.owed_events.pop(0)
            if order.owes_cancel:
                await ports().raise_event(order.saga_instance_id, CANCEL_EVENT,
                                          {"reason": rules.cancel_reason(order)})
                order.cancel_raised = True
            if order.owes_continuation:
                await self._start_continuation(order)
                rules.continued(order)
                await self._pay_row(order)  # it names the second half's workflow now
        except Exception as error:  # noqa: BLE001 - the sidecar, the broker or the engine: owed still
            await self._save(order)  # what was paid is not paid twice
            log.warning("order=%s step=settle outcome=OWED detail=%s", order.order_id, _one_line(error))
            await self._arm_settle(order)
            if strict:
                raise OrderError("UNAVAILABLE", f"order {order.order_id}: {_one_line(error)}") from error
            return
        await self._save(order)

    @staticmethod
    async def _pay_row(order: OrderState) -> None:
        row = order.index_row_json()
        if order.indexed_as != row:
            await ports().note_in_index(order.order_id, row)
            order.indexed_as = row

    async def _ensure_saga(self, order: OrderState) -> None:
        """Start the saga a stop prevented. Only while the order is PLACED: a saga that ran
        has moved it on, and its finished workflow may since have been purged (retention)."""
        if order.status != OrderStatus.PLACED or order.owed_events:
            return  # `placed` goes out before the saga starts
        if await ports().saga_run(order.saga_instance_id) is None:
            await self._start_saga(order)

    async def _start_saga(self, order: OrderState) -> None:
        """Start the order's saga (the latest version), with the threshold frozen with it."""
        await ports().start_workflow(SAGA_NAME, self._saga_input(order).model_dump(mode="json"),
                                     order.saga_instance_id)

    def _saga_input(self, order: OrderState) -> SagaInput:
        return SagaInput(
            order=order.request,
            approval_threshold_cents=order.approval_threshold_cents
            if order.approval_threshold_cents is not None else _settings.approval_threshold_cents,
            approval_timeout_s=_settings.approval_timeout_s,
            step_timeout_s=_settings.step_timeout_s,
        )

    async def _start_continuation(self, order: OrderState) -> None:
        """Start a parked order's second half (once: a start that went through before a stop
        is found running)."""
        decided = DecidedInput(saga=self._saga_input(order), outcome=order.continuation,
                               approver=order.decided_by)
        try:
            await ports().start_workflow(DECIDED_SAGA_NAME, decided.model_dump(mode="json"),
                                         continuation_instance_id(order.order_id))
        except Exception as error:  # noqa: BLE001 - grpc's errors are of many classes
            if not _already_exists(error):
                raise
        log.info("order=%s step=approval outcome=%s detail=second half started", order.order_id,
                 order.continuation.upper())

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

    async def _arm_checkup(self, at: str = "") -> None:
        """The check-up: soon after placing (a saga that never started is started then), then
        once per deadline while the order is in flight; it expires by itself, so it never has
        to be deleted as it fires. An order that ends drops it (`_drop_checkup`). A parked
        order's check-up comes soon (it purges the ended first workflow) and then at the end of
        its wait (`at`), which it ends: one reminder per waiting order, and no durable timer
        (saga v3)."""
        deadline = timedelta(seconds=_settings.order_deadline_s)
        first = min(timedelta(seconds=_settings.start_check_s), deadline)
        period = deadline
        if at:  # soon (it purges the ended first workflow), then at the end of the wait
            wait = max(datetime.fromisoformat(at) - datetime.now(timezone.utc), timedelta(seconds=1))
            first = min(first, wait)
            period = max(wait - first, timedelta(seconds=1))
        try:
            await self.register_reminder(CHECKUP_REMINDER, b"", first, period, ttl=3 * deadline + first + period)
        except Exception:
            if not at:
                raise
            # Not moved: the check-up armed at placing still comes once per deadline (later
            # than the wait's end by up to the deadline's hour), and ends the wait then.
            log.warning("order=%s step=checkup outcome=NOT_MOVED detail=to %s", self.id.id, at)

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
        if order.status != getattr(self, "_stored_status", None):
            order.status_since = now_iso()
        await self._state_manager.set_state(STATE_KEY, order.model_dump_json())
        await self._state_manager.save_state()
        admission.current().note(order.order_id, order.status)  # every status change comes here
        metrics.IN_FLIGHT.note(order.order_id, getattr(self, "_stored_status", None), order.status, order.reason)
        self._stored_status = order.status


def _past(iso_time: str, seconds: float) -> bool:
    if not iso_time:
        return True
    return datetime.now(timezone.utc) >= datetime.fromisoformat(iso_time) + timedelta(seconds=seconds)


def _already_exists(error: Exception) -> bool:
    code = getattr(error, "code", None)
    return callable(code) and getattr(code(), "name", "") == "ALREADY_EXISTS"


def _one_line(error: Exception) -> str:
    text = getattr(error, "details", lambda: None)() if callable(getattr(error, "details", None)) else None
    return (text or str(error) or type(error).__name__).splitlines()[0][:300]
