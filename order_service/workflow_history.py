"""A workflow instance's history from a sidecar's workflow API (GetInstanceHistory, served by
Dapr 1.18's actor backend), and the version of the workflow it started with.

The SDK has no public call for it; its generated workflow-API client is used directly, here only.
"""

from __future__ import annotations

import grpc
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as service_pb
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as service_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb


def instance_history(target: str, api_token: str | None, instance_id: str,
                     timeout_s: float = 30) -> list[pb.HistoryEvent]:
    """The events of `instance_id`, from the sidecar at `target` (host:gRPC port)."""
    with grpc.insecure_channel(target) as channel:
        reply = service_grpc.TaskHubSidecarServiceStub(channel).GetInstanceHistory(
            service_pb.GetInstanceHistoryRequest(instanceId=instance_id),
            metadata=(("dapr-api-token", api_token),) if api_token else None, timeout=timeout_s)
    return list(reply.events)


def started_version(events: list[pb.HistoryEvent]) -> str:
    """The version name the instance runs, or "" when it records none (started before versioning)."""
    return next((e.workflowStarted.version.name for e in events
                 if e.HasField("workflowStarted") and e.workflowStarted.version.name), "")
