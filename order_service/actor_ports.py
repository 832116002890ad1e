"""What OrderActor asks of the world outside its own state, behind one small interface: publish a
lifecycle event, write the order's row in the index, start a workflow, look one up, raise an
event to one, purge a finished one. The actor's rules are tested against a fake of it
(tests/unit/test_actor.py); `DaprPorts` is the real one, through order-service's own sidecar
(order_service/sidecar.py).
"""

from __future__ import annotations

from typing import Protocol

from order_service import events, index
from order_service.domain import LifecycleEvent
from order_service.sidecar import Run as SagaRun
from order_service.sidecar import sidecar

__all__ = ["ActorPorts", "DaprPorts", "SagaRun"]


class ActorPorts(Protocol):
    async def publish(self, event: LifecycleEvent) -> None: ...

    async def note_in_index(self, order_id: str, row_json: str) -> None: ...

    async def start_workflow(self, name: str, workflow_input: dict, instance_id: str) -> None: ...

    async def saga_run(self, instance_id: str) -> SagaRun | None: ...

    async def raise_event(self, instance_id: str, name: str, data: dict) -> None: ...

    async def purge_workflow(self, instance_id: str) -> None: ...


class DaprPorts:
    async def publish(self, event: LifecycleEvent) -> None:
        await events.publish(event)

    async def note_in_index(self, order_id: str, row_json: str) -> None:
        await index.note(sidecar(), order_id, row_json)

    async def start_workflow(self, name: str, workflow_input: dict, instance_id: str) -> None:
        await sidecar().start_workflow(name, workflow_input, instance_id)

    async def saga_run(self, instance_id: str) -> SagaRun | None:
        return await sidecar().workflow_run(instance_id)

    async def raise_event(self, instance_id: str, name: str, data: dict) -> None:
        await sidecar().raise_event(instance_id, name, data)

    async def purge_workflow(self, instance_id: str) -> None:
        await sidecar().purge_workflow(instance_id)
