"""Starting a workflow in the caller's trace.

Dapr's workflow engine parents its `create_workflow` span, and from it the orchestration's and
every activity's, on the `parentTraceContext` of the start request (durabletask's
`CreateInstanceRequest`); the activity's span then reaches the Python activity, whose calls
carry it on. dapr-ext-workflow 1.18.3's client leaves that field empty and its channel adds no
`traceparent`, so with a span current the start request is sent here, with the field set, over
the same sidecar API. Without a span (traces off) the SDK's client does it, as before.
"""

from __future__ import annotations

import json

from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb
from dapr.ext.workflow.aio import DaprWorkflowClient
from google.protobuf import wrappers_pb2

from apphost.observability import current_traceparent
from order_service.dapr_clients import sidecar_channel, sidecar_metadata


async def schedule_workflow(client: DaprWorkflowClient, name: str, workflow_input: dict, instance_id: str) -> str:
    """Schedule workflow `name` (its latest version) as `instance_id`, in the current trace."""
    traceparent = current_traceparent()
    if not traceparent:
        return await client.schedule_new_workflow(name, input=workflow_input, instance_id=instance_id)
    request = pb.CreateInstanceRequest(
        name=name,
        instanceId=instance_id,
        input=wrappers_pb2.StringValue(value=json.dumps(workflow_input)),
        parentTraceContext=pb.TraceContext(traceParent=traceparent),
    )
    reply = await stubs.TaskHubSidecarServiceStub(sidecar_channel()).StartInstance(
        request, metadata=sidecar_metadata(), timeout=60)
    return reply.instanceId
