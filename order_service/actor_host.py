"""The actor host for OrderActor, on a channel that carries the API token on its event stream
(order_service/sidecar.py says why), with the caller's trace context handed to the actor.

daprd hands each actor call the caller's metadata, `traceparent` included, but the SDK's
dispatch passes the actor only its data: the host keeps the traceparent in a context variable
for the call's turn (`incoming_traceparent`).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.actor.runtime.runtime import ActorRuntime

from order_service.sidecar import sidecar

_incoming_traceparent: ContextVar[str] = ContextVar("incoming_traceparent", default="")


def incoming_traceparent() -> str:
    """The `traceparent` of the actor call being served ("" when the caller sent none)."""
    return _incoming_traceparent.get()


class TracedActorHost(ActorGrpcHost):
    async def _on_invoke(self, session, request) -> None:
        # Each invocation runs in a task of its own, so the variable is this call's alone.
        # From the HTTP actor API the header comes as Go spells it (`Traceparent`).
        _incoming_traceparent.set(next((v for k, v in request.metadata.items() if k.lower() == "traceparent"), ""))
        await super()._on_invoke(session, request)


def new_actor_host(idle_s: int = 3600) -> ActorGrpcHost:
    # An actor leaves memory (this process's and its sidecar's) `idle_s` after its last call:
    # a waiting order costs nothing there (the SDK's default is an hour).
    ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=timedelta(seconds=idle_s),
                                                     actor_scan_interval=timedelta(seconds=min(30, idle_s))))
    # app_port=0: this process's own gRPC server already provides the app channel.
    host = TracedActorHost(app_port=0)
    if sidecar().token:
        # The host creates its channel lazily only when none is set (private, see sidecar.py).
        host._channel = sidecar().actor_host_channel()
    return host
