"""order-service's way to its own sidecar (daprd): the one module that knows where it is, makes
the channels and attaches the API token and the caller's trace, and speaks to it.

Everything order-service asks of Dapr goes through a `Sidecar`: the actors (one call path, over
gRPC, with structured errors), the workflows (start, look up, raise an event, read a history),
pub/sub, the state store (the orders index), and service invocation (the stubs the activities
call inventory, payment and shipping with). The SDK's own workers (the actor host, the workflow
runtime) keep their connections, the actor host on a channel made here.

Channels are made once and reused: a sync one for the API's threads, an aio one per event loop
(aio channels are bound to the loop that made them: the actor host's, the activities').

An actor method that raises reaches a gRPC caller as data, not as an error: daprd hands back the
SDK's error payload (`{"message", "errorCode"}`) as the call's answer. `call_actor` recognises
that shape and raises ActorCallError with the code the actor chose (OrderError sets it), so a
refusal or an actor that failed half-way is never mistaken for an answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc
from dapr.clients.exceptions import DaprInternalError
from dapr.clients.grpc._channel import create_aio_channel
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as workflow_pb
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as workflow_grpc
from dapr.ext.workflow._durabletask.internal import protos as history_pb
from dapr.proto import api_service_v1, api_v1, common_v1
from google.protobuf import wrappers_pb2

from apphost.observability import trace_carrier, trace_metadata

# The gRPC status names an actor may refuse a call with (DESIGN.md's errors); any other failure
# of an actor, or of the way to it, is UNAVAILABLE: try again.
REFUSALS = frozenset({"INVALID_ARGUMENT", "ALREADY_EXISTS", "NOT_FOUND", "FAILED_PRECONDITION", "UNAVAILABLE",
                      "RESOURCE_EXHAUSTED"})
# The keys of the payload the SDK's actor host sends back when a method raises.
_ERROR_PAYLOAD = {"message", "errorCode", "raw_response_bytes"}


class ActorCallError(Exception):
    """An actor call that got no answer. `code` is the gRPC status name the actor refused it with
    (DESIGN.md's errors), or UNAVAILABLE when the actor, or the way to it, failed."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ActorRefusal(DaprInternalError):
    """What an actor raises to refuse a call with a gRPC status name: the SDK's actor host sends
    it back as `{"message": ..., "errorCode": code}`, which `call_actor` turns into ActorCallError."""

    def __init__(self, code: str, message: str):
        super().__init__(message, error_code=code)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class Run:
    """What the workflow engine says of a workflow instance."""

    status: str  # its runtime status: PENDING, RUNNING, COMPLETED, FAILED, TERMINATED, STALLED...
    output: str = ""  # what it returned (JSON), once it ended
    custom_status: str = ""  # what it set as its custom status (JSON), if anything


@dataclass
class Actors:
    """Calls to the actors of one type, by id (what the API, approvals and intake call OrderActor with)."""

    sidecar: "Sidecar"
    actor_type: str

    def call(self, actor_id: str, method: str, payload: Any = None) -> Any:
        return self.sidecar.call_actor(self.actor_type, actor_id, method, payload)

    def close(self) -> None:
        self.sidecar.close()


@dataclass
class Sidecar:
    """A daprd's gRPC API at `host:port`, with `token` (DAPR_API_TOKEN) on every call."""

    host: str
    port: int
    token: str | None = None
    _sync: grpc.Channel | None = field(default=None, repr=False)
    _aio: dict = field(default_factory=dict, repr=False)  # event loop id -> channel
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # channel -> its Dapr stub: building one binds every method of the Dapr API, about 0.8 ms on
    # an event loop's channel and 2.7 ms on the thread channel, and a saga made about eight
    # (issue 22).
    _stubs: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls) -> "Sidecar":
        """The app's own sidecar, as daprd tells its app where it is."""
        return cls(os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1"), int(os.environ["DAPR_GRPC_PORT"]),
                   os.environ.get("DAPR_API_TOKEN") or None)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- channels ---------------------------------------------------------------------------

    def metadata(self, *extra: tuple[str, str]) -> tuple:
        """What every call carries: the API token and the current span's `traceparent`."""
        return ((("dapr-api-token", self.token),) if self.token else ()) + trace_metadata() + extra

    def channel(self) -> grpc.Channel:
        with self._lock:
            if self._sync is None:
                self._sync = grpc.insecure_channel(self.target)
            return self._sync

    def close(self) -> None:
        """Closes the thread channel; event loops' channels are dropped (each closes with its loop)."""
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None
            self._aio.clear()
            self._stubs.clear()

    def aio_channel(self) -> grpc.aio.Channel:
        """The running event loop's channel."""
        loop = id(asyncio.get_running_loop())
        if loop not in self._aio:
            self._aio[loop] = grpc.aio.insecure_channel(self.target)
        return self._aio[loop]

    def _dapr(self, channel) -> api_service_v1.DaprStub:
        """The Dapr API on `channel`, built once per channel (two threads may both build it the
        first time: harmless)."""
        stub = self._stubs.get(channel)
        if stub is None:
            stub = self._stubs[channel] = api_service_v1.DaprStub(channel)
        return stub

    def actor_host_channel(self) -> grpc.aio.Channel:
        """A channel for the SDK's actor host. dapr 1.18.3's aio token interceptor builds call
        details with a plain list as metadata, which grpc.aio drops for stream-stream calls: the
        actor event stream then reaches a sidecar that requires the token without it. Stream
        calls on this one carry it; unary calls keep the SDK's interceptors."""
        return create_aio_channel(interceptors=[_StreamToken(self.token)] if self.token else None)

    # ---- actors -----------------------------------------------------------------------------

    def call_actor(self, actor_type: str, actor_id: str, method: str, data: Any = None, timeout: float = 30):
        """Call an actor method from a thread; its answer (decoded JSON). ActorCallError when it
        refused the call or it did not answer."""
        try:
            reply = self._dapr(self.channel()).InvokeActor(
                self._actor_request(actor_type, actor_id, method, data), metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as error:
            raise _unanswered(error) from None
        return _answer(reply.data)

    async def call_actor_async(self, actor_type: str, actor_id: str, method: str, data: Any = None,
                               timeout: float = 30):
        try:
            reply = await self._dapr(self.aio_channel()).InvokeActor(
                self._actor_request(actor_type, actor_id, method, data), metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as error:
            raise _unanswered(error) from None
        return _answer(reply.data)

    @staticmethod
    def _actor_request(actor_type: str, actor_id: str, method: str, data: Any) -> api_v1.InvokeActorRequest:
        # daprd hands the actor this map: the actor joins the caller's trace (actor_host.py).
        return api_v1.InvokeActorRequest(actor_type=actor_type, actor_id=actor_id, method=method,
                                         data=json.dumps(data).encode(), metadata=trace_carrier())

    # ---- workflows ----------------------------------------------------------------------------

    async def start_workflow(self, name: str, workflow_input: dict, instance_id: str) -> str:
        """Schedule workflow `name` (its latest version) as `instance_id`, in the current trace:
        Dapr's engine parents the orchestration's spans, and every activity's, on the request's
        `parentTraceContext` (dapr-ext-workflow 1.18.3's client leaves it empty)."""
        parent = dict(self.metadata()).get("traceparent", "")
        request = history_pb.CreateInstanceRequest(
            name=name, instanceId=instance_id, input=wrappers_pb2.StringValue(value=json.dumps(workflow_input)),
            parentTraceContext=history_pb.TraceContext(traceParent=parent) if parent else None)
        reply = await workflow_grpc.TaskHubSidecarServiceStub(self.aio_channel()).StartInstance(
            request, metadata=self.metadata(), timeout=60)
        return reply.instanceId

    async def workflow_run(self, instance_id: str) -> Run | None:
        """The instance as the engine knows it, with its output and custom status; None if none."""
        try:
            reply = await workflow_grpc.TaskHubSidecarServiceStub(self.aio_channel()).GetInstance(
                history_pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=True),
                metadata=self.metadata(), timeout=30)
        except grpc.RpcError as error:
            if _no_such_instance(error):
                return None
            raise
        return _run(reply)

    def workflow_run_sync(self, instance_id: str, timeout: float = 10) -> tuple[Run, str] | None:
        """The instance (from a thread), with its input; None when it does not exist."""
        reply = self._instance_sync(instance_id, with_inputs=True, timeout=timeout)
        run = _run(reply) if reply is not None else None
        return (run, reply.workflowState.input.value) if run else None

    def _instance_sync(self, instance_id: str, with_inputs: bool, timeout: float):
        """GetInstance from a thread; None when there is no such instance."""
        try:
            return workflow_grpc.TaskHubSidecarServiceStub(self.channel()).GetInstance(
                history_pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=with_inputs),
                metadata=self.metadata(), timeout=timeout)
        except grpc.RpcError as error:
            if _no_such_instance(error):
                return None
            raise

    def start_workflow_sync(self, name: str, workflow_input: dict, instance_id: str) -> str:
        """Schedule workflow `name` (its latest version) as `instance_id`, from a thread."""
        request = history_pb.CreateInstanceRequest(
            name=name, instanceId=instance_id, input=wrappers_pb2.StringValue(value=json.dumps(workflow_input)))
        reply = workflow_grpc.TaskHubSidecarServiceStub(self.channel()).StartInstance(
            request, metadata=self.metadata(), timeout=60)
        return reply.instanceId

    def workflow_status(self, instance_id: str, timeout: float = 10) -> str | None:
        """The instance's runtime status (from a thread), or None when it does not exist."""
        reply = self._instance_sync(instance_id, with_inputs=False, timeout=timeout)
        run = _run(reply) if reply is not None else None
        return run.status if run else None

    async def purge_workflow(self, instance_id: str) -> None:
        """Remove a finished instance's history (and its retention reminder) now."""
        await workflow_grpc.TaskHubSidecarServiceStub(self.aio_channel()).PurgeInstances(
            history_pb.PurgeInstancesRequest(instanceId=instance_id, recursive=False),
            metadata=self.metadata(), timeout=30)

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        await workflow_grpc.TaskHubSidecarServiceStub(self.aio_channel()).RaiseEvent(
            history_pb.RaiseEventRequest(instanceId=instance_id, name=name,
                                         input=wrappers_pb2.StringValue(value=json.dumps(data))),
            metadata=self.metadata(), timeout=30)

    def workflow_history(self, instance_id: str, timeout: float = 30) -> list:
        """The instance's history (Dapr 1.18's GetInstanceHistory; the SDK has no call for it)."""
        reply = workflow_grpc.TaskHubSidecarServiceStub(self.channel()).GetInstanceHistory(
            workflow_pb.GetInstanceHistoryRequest(instanceId=instance_id), metadata=self.metadata(), timeout=timeout)
        return list(reply.events)

    # ---- pub/sub and state ------------------------------------------------------------------------

    async def publish(self, pubsub: str, topic: str, data: bytes, *, event_id: str, event_type: str) -> None:
        """Publish under a stable CloudEvent id (consumers, and JetStream's duplicate window, drop a
        second copy); the current span rides along, so a subscriber joins the trace."""
        await self._dapr(self.aio_channel()).PublishEvent(
            _publish_request(pubsub, topic, data, event_id, event_type), metadata=self.metadata(), timeout=30)

    def publish_sync(self, pubsub: str, topic: str, data: bytes, *, event_id: str, event_type: str) -> None:
        self._dapr(self.channel()).PublishEvent(
            _publish_request(pubsub, topic, data, event_id, event_type), metadata=self.metadata(), timeout=30)

    async def get_state(self, store: str, key: str) -> tuple[bytes, str]:
        """The value under `key` (b"" when none) and its ETag."""
        reply = await self._dapr(self.aio_channel()).GetState(
            api_v1.GetStateRequest(store_name=store, key=key), metadata=self.metadata(), timeout=30)
        return reply.data, reply.etag

    async def save_state_if(self, store: str, key: str, value: bytes, etag: str) -> None:
        """Write `value` only if the key still has `etag` (none: only if it is absent). A lost race
        raises grpc.RpcError (apphost.statestore.is_write_conflict tells it)."""
        await self._dapr(self.aio_channel()).SaveState(
            api_v1.SaveStateRequest(store_name=store, states=[_conditional(key, value, etag)]),
            metadata=self.metadata(), timeout=30)

    async def save_state(self, store: str, key: str, value: bytes) -> None:
        """Write `value` under `key`, whatever is there."""
        await self._dapr(self.aio_channel()).SaveState(
            api_v1.SaveStateRequest(store_name=store, states=[common_v1.StateItem(key=key, value=value)]),
            metadata=self.metadata(), timeout=30)

    def get_state_sync(self, store: str, key: str, timeout: float = 30) -> tuple[bytes, str]:
        """The value under `key` (b"" when none) and its ETag, from a thread."""
        reply = self._dapr(self.channel()).GetState(
            api_v1.GetStateRequest(store_name=store, key=key), metadata=self.metadata(), timeout=timeout)
        return reply.data, reply.etag

    def save_state_if_sync(self, store: str, key: str, value: bytes, etag: str, timeout: float = 30) -> None:
        """`save_state_if`, from a thread."""
        self._dapr(self.channel()).SaveState(
            api_v1.SaveStateRequest(store_name=store, states=[_conditional(key, value, etag)]),
            metadata=self.metadata(), timeout=timeout)

    def get_bulk_state(self, store: str, keys: list[str], timeout: float = 60) -> dict[str, bytes]:
        """The values under `keys` that exist (from a thread)."""
        reply = self._dapr(self.channel()).GetBulkState(
            api_v1.GetBulkStateRequest(store_name=store, keys=keys, parallelism=1), metadata=self.metadata(),
            timeout=timeout)
        failed = [item for item in reply.items if item.error]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(keys)} keys could not be read: {failed[0].error}")
        return {item.key: item.data for item in reply.items if item.data}


_default: Sidecar | None = None


def sidecar() -> Sidecar:
    """This app's own sidecar (from daprd's environment, read once)."""
    global _default
    if _default is None:
        _default = Sidecar.from_env()
    return _default


def started_version(events: list) -> str:
    """The version name an instance runs, from its history ("" when it records none: it started
    before versioning)."""
    return next((e.workflowStarted.version.name for e in events
                 if e.HasField("workflowStarted") and e.workflowStarted.version.name), "")


def _answer(data: bytes) -> Any:
    answer = json.loads(data) if data else None
    if isinstance(answer, dict) and "errorCode" in answer and set(answer) <= _ERROR_PAYLOAD:
        code = answer["errorCode"] if answer["errorCode"] in REFUSALS else "UNAVAILABLE"
        raise ActorCallError(code, str(answer.get("message") or "the actor failed"))
    return answer


def _unanswered(error: grpc.RpcError) -> ActorCallError:
    """A call the sidecar did not hand the actor: one it refused as malformed (an actor id daprd
    does not take) can never succeed; anything else may, later."""
    code = "INVALID_ARGUMENT" if error.code() == grpc.StatusCode.INVALID_ARGUMENT else "UNAVAILABLE"
    return ActorCallError(code, f"{error.code().name}: {error.details()}")


def _no_such_instance(error: grpc.RpcError) -> bool:
    """How a sidecar may say an instance does not exist (1.18.3 answers `exists: false`; the
    SDK's client also takes this error, which other backends give)."""
    return error.code() == grpc.StatusCode.NOT_FOUND or "no such instance exists" in (error.details() or "")


def _run(reply) -> Run | None:
    if not reply.exists:
        return None
    state = reply.workflowState
    status = history_pb.OrchestrationStatus.Name(state.workflowStatus).removeprefix("ORCHESTRATION_STATUS_")
    return Run(status=status, output=state.output.value, custom_status=state.customStatus.value)


def _conditional(key: str, value: bytes, etag: str) -> common_v1.StateItem:
    """Only if the key still has `etag` (none: only if it is absent)."""
    return common_v1.StateItem(key=key, value=value, etag=common_v1.Etag(value=etag) if etag else None,
                               options=common_v1.StateOptions(concurrency=common_v1.StateOptions.CONCURRENCY_FIRST_WRITE))


def _publish_request(pubsub: str, topic: str, data: bytes, event_id: str, event_type: str):
    return api_v1.PublishEventRequest(pubsub_name=pubsub, topic=topic, data=data, data_content_type="application/json",
                                      metadata={"cloudevent.id": event_id, "cloudevent.type": event_type})


class _StreamToken(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), ("dapr-api-token", self._token))
        return await continuation(details._replace(metadata=metadata), request_iterator)
