"""What OrderActor asks of the world outside its own state, behind one small interface: publish a
lifecycle event, note the order in the index, start a workflow, look one up, raise an event to
one. The actor's rules are tested against a fake of it (tests/unit/test_actor.py); `DaprPorts`
is the real one, through order-service's own sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dapr.ext.workflow.aio import DaprWorkflowClient

from order_service import events, index
from order_service.dapr_clients import dapr_client
from order_service.domain import LifecycleEvent
from order_service.traced_workflows import schedule_workflow


@dataclass(frozen=True)
class SagaRun:
    """What the workflow engine says of a workflow instance."""

    status: str  # its runtime status: PENDING, RUNNING, COMPLETED, FAILED, TERMINATED, STALLED...
    output: str = ""  # what it returned (JSON), once it ended
    custom_status: str = ""  # what it set as its custom status (JSON), if anything


class ActorPorts(Protocol):
    async def publish(self, event: LifecycleEvent) -> None: ...

    async def note_in_index(self, order_id: str, label: str) -> None: ...

    async def start_workflow(self, name: str, workflow_input: dict, instance_id: str) -> None: ...

    async def saga_run(self, instance_id: str) -> SagaRun | None: ...

    async def raise_event(self, instance_id: str, name: str, data: dict) -> None: ...


class DaprPorts:
    def __init__(self):
        self._workflows: DaprWorkflowClient | None = None

    def _client(self) -> DaprWorkflowClient:
        if self._workflows is None:  # created on first use: it needs the actor host's event loop
            self._workflows = DaprWorkflowClient()
        return self._workflows

    async def publish(self, event: LifecycleEvent) -> None:
        await events.publish(event)

    async def note_in_index(self, order_id: str, label: str) -> None:
        await index.note(dapr_client(), order_id, label)

    async def start_workflow(self, name: str, workflow_input: dict, instance_id: str) -> None:
        await schedule_workflow(self._client(), name, workflow_input, instance_id)

    async def saga_run(self, instance_id: str) -> SagaRun | None:
        state = await self._client().get_workflow_state(instance_id, fetch_payloads=True)
        if state is None:
            return None
        return SagaRun(status=state.runtime_status.name, output=state.serialized_output or "",
                       custom_status=state.serialized_custom_status or "")

    async def raise_event(self, instance_id: str, name: str, data: dict) -> None:
        await self._client().raise_workflow_event(instance_id, name, data=data)
