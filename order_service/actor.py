"""OrderActor: one virtual actor per order, owner of the order's identity, status and timeline.

It starts the saga workflow and returns: it never awaits the saga (an activity calls back into
this actor, and an actor serves one turn at a time). Activities record steps through
`record_step`, which is idempotent per key because activities run at least once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from dapr.actor import Actor, ActorInterface, actormethod
from dapr.ext.workflow.aio import DaprWorkflowClient
from pydantic import ValidationError

from order_service.domain import OrderRequest, OrderState, OrderStatus, TimelineEntry, saga_instance_id
from order_service.messages import SagaInput
from order_service.settings import Settings

ACTOR_TYPE = "OrderActor"
STATE_KEY = "order"
SAGA_WORKFLOW = "order_saga"

log = logging.getLogger("order_service.actor")
_workflow_client: DaprWorkflowClient | None = None
_settings = Settings()


def configure(settings: Settings) -> None:
    """Called once by the composition root: approval threshold and timeout for new sagas."""
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

    @actormethod(name="record_step")
    async def record_step(self, data: dict) -> dict: ...


class OrderActor(Actor, OrderActorInterface):
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
        await self._ensure_saga(order)
        log.info("order=%s step=place outcome=PLACED total_cents=%d lines=%d", order.order_id,
                 request.total_cents, len(request.items))
        return order.model_dump(mode="json")

    async def get(self) -> dict | None:
        order = await self._load()
        return order.model_dump(mode="json") if order else None

    async def record_step(self, data: dict) -> dict:
        """Append a timeline entry once per key; optionally move status and reason with it."""
        order = await self._load()
        if order is None:
            raise OrderError("NOT_FOUND", f"order {self.id.id} does not exist")
        entry = TimelineEntry.model_validate({"at": now_iso(), **data["entry"]})
        if entry.key and any(e.key == entry.key for e in order.timeline):
            return order.model_dump(mode="json")
        order.timeline.append(entry)
        if data.get("status") and not order.status.terminal:
            order.status = OrderStatus(data["status"])
            order.reason = data.get("reason", "")
        await self._save(order)
        return order.model_dump(mode="json")

    async def _ensure_saga(self, order: OrderState) -> None:
        client = workflow_client()
        if await client.get_workflow_state(order.saga_instance_id, fetch_payloads=False) is not None:
            return
        saga_input = SagaInput(
            order=order.request,
            approval_threshold_cents=_settings.approval_threshold_cents,
            approval_timeout_s=_settings.approval_timeout_s,
        )
        await client.schedule_new_workflow(
            SAGA_WORKFLOW, input=saga_input.model_dump(mode="json"), instance_id=order.saga_instance_id
        )

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
