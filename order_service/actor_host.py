"""The actor host for OrderActor, with a workaround for an SDK bug around the API token, and the
caller's trace context handed to the actor.

dapr 1.18.3's aio token interceptor builds call details with a plain list as metadata, which
grpc.aio drops for stream-stream calls: the actor event stream then reaches a sidecar that
requires DAPR_API_TOKEN without it and is refused (UNAUTHENTICATED). The host is given a
channel whose stream calls carry the token; unary calls keep the SDK's own interceptors.

daprd hands each actor call the caller's metadata, `traceparent` included, but the SDK's
dispatch passes the actor only its data: the host keeps the traceparent in a context variable
for the call's turn (`incoming_traceparent`).
"""

from __future__ import annotations

from contextvars import ContextVar

import grpc
from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.clients.grpc._channel import create_aio_channel
from dapr.conf import settings


class _StreamToken(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, token: str):
        self._token = token

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        metadata = grpc.aio.Metadata(*(details.metadata or ()), ("dapr-api-token", self._token))
        return await continuation(details._replace(metadata=metadata), request_iterator)


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


def new_actor_host() -> ActorGrpcHost:
    # app_port=0: this process's own gRPC server already provides the app channel.
    host = TracedActorHost(app_port=0)
    if settings.DAPR_API_TOKEN:
        # The host creates its channel lazily only when none is set (private, see above).
        host._channel = create_aio_channel(interceptors=[_StreamToken(settings.DAPR_API_TOKEN)])
    return host
