"""OrderActor: one virtual actor per order, owner of the order's identity, status and timeline.

It starts the saga workflow and returns: it never awaits the saga (an activity calls back into
this actor, and an actor serves one turn at a time). Activities record steps through
`record_step`, idempotent per key because activities run at least once. Because the actor
serves one call at a time, it is also the race-free gate for cancels: a cancel is accepted
only while the order has not entered SHIPPING, and once accepted the saga may not enter it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.aio.clients import DaprClient
from dapr.ext.workflow.aio import DaprWorkflowClient
from pydantic import ValidationError

from order_service.domain import (
    CANCELLABLE,
    OrderRequest,
    OrderState,
    OrderStatus,
    TimelineEntry,
    saga_instance_id,
)
from order_service.messages import LifecycleEvent, SagaInput
from order_service.saga import CANCEL_EVENT, SAGA_NAME
from order_service.settings import Settings
from order_service.topics import EVENTS_TOPIC, PUBSUB

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

    @actormethod(name="record_step")
    async def record_step(self, data: dict) -> dict: ...


class OrderActor(Actor, OrderActorInterface, Remindable):
    async def place(self, data: dict) -> dict:
        try:
            request = OrderRequest.model_validate(data)
        except ValidationError as error:
            raise OrderError("INVALID_ARGUMENT", _first_error(error)) from None
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
        )
        await self._save(order)
        await self.register_reminder(DEADLINE_REMINDER, b"", timedelta(seconds=_settings.order_deadline_s))
        await self._ensure_saga(order)
        log.info("order=%s step=place outcome=PLACED total_cents=%d lines=%d", order.order_id,
                 request.total_cents, len(request.items))
        return order.model_dump(mode="json")

    async def get(self) -> dict | None:
        order = await self._load()
        return order.model_dump(mode="json") if order else None

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

    async def record_step(self, data: dict) -> dict:
        """Append a timeline entry once per key; optionally move status and reason with it.

        Answers the saga whether a cancel was accepted: entering an in-flight status is then
        refused, so the saga unwinds instead of charging or shipping.
        """
        order = await self._require()
        status = OrderStatus(data["status"]) if data.get("status") else None
        if order.cancel_requested and status in CANCELLABLE | {OrderStatus.SHIPPING}:
            return {"cancel_requested": True}
        key = data.get("key") or ""
        if not (key and any(e.key == key for e in order.timeline)):
            order.timeline.append(TimelineEntry(at=now_iso(), step=data["step"], outcome=data["outcome"],
                                                detail=data.get("detail", ""), key=key))
            if status and not order.status.terminal:
                order.status = status
                order.reason = data.get("reason", "")
            if data.get("tracking_number"):
                order.tracking_number = data["tracking_number"]
            await self._save(order)
        return {"cancel_requested": order.cancel_requested}

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
        async with DaprClient() as client:
            await client.publish_event(PUBSUB, EVENTS_TOPIC, event.model_dump_json(),
                                       data_content_type="application/json",
                                       publish_metadata={"cloudevent.id": f"{order.order_id}.overdue",
                                                         "cloudevent.type": "ordersaga.order.overdue"})
        log.warning("order=%s step=deadline outcome=EXCEEDED status=%s", order.order_id, order.status)

    async def _ensure_saga(self, order: OrderState) -> None:
        client = workflow_client()
        if await client.get_workflow_state(order.saga_instance_id, fetch_payloads=False) is not None:
            return
        saga_input = SagaInput(
            order=order.request,
            approval_threshold_cents=_settings.approval_threshold_cents,
            approval_timeout_s=_settings.approval_timeout_s,
            step_timeout_s=_settings.step_timeout_s,
        )
        await client.schedule_new_workflow(
            SAGA_NAME, input=saga_input.model_dump(mode="json"), instance_id=order.saga_instance_id
        )

    async def _require(self) -> OrderState:
        order = await self._load()
        if order is None:
            raise OrderError("NOT_FOUND", f"order {self.id.id} does not exist")
        return order

    # Stored as one JSON string: the SDK's default serializer turns strings that look like
    # datetimes back into datetime objects, which the timeline's ISO strings would trip over.
    async def _load(self) -> OrderState | None:
        found, value = await self._state_manager.try_get_state(STATE_KEY)
        return OrderState.model_validate_json(value) if found else None

    async def _save(self, order: OrderState) -> None:
        await self._state_manager.set_state(STATE_KEY, order.model_dump_json())
        await self._state_manager.save_state()


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "order"
    return f"{field}: {first['msg']}"
