"""The actor host for OrderActor, on a channel that carries the API token on its event stream
(order_service/sidecar.py says why), with the caller's trace context handed to the actor.

A host whose event stream ends forgets the actors it held (`forget_active_actors`): the sidecar
at the other end may have died, its actors lived on another replica meanwhile and changed
there, and placement hands them back when a sidecar (a new one) registers this app again. The
SDK keeps them across a reconnection, each with the state it last loaded: without this, an
order completed elsewhere read RESERVING for good from this app's memory, and a turn of it would
have saved that stale state over the real one (tests/chaos/test_sidecar_restart.py).

daprd hands each actor call the caller's metadata, `traceparent` included, but the SDK's
dispatch passes the actor only its data: the host keeps the traceparent in a context variable
for the call's turn (`incoming_traceparent`).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import timedelta

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.actor.runtime.runtime import ActorRuntime

from order_service.sidecar import sidecar

logger = logging.getLogger(__name__)

# The private SDK names this module relies on (dapr 1.18.3): fail at start, not at a reconnection.
assert hasattr(ActorRuntime, "_actor_managers") and hasattr(ActorGrpcHost, "_run_session"), \
    "dapr's ActorRuntime._actor_managers or ActorGrpcHost._run_session is gone: see forget_active_actors"

_incoming_traceparent: ContextVar[str] = ContextVar("incoming_traceparent", default="")


def incoming_traceparent() -> str:
    """The `traceparent` of the actor call being served ("" when the caller sent none)."""
    return _incoming_traceparent.get()


async def forget_active_actors() -> int:
    """Deactivates every actor this process holds (each reloads its state from the store when it
    is next called); how many there were. The SDK has no public way to list them: the managers
    and their active actors are private names (dapr 1.18.3), checked at import below."""
    forgotten = 0
    for actor_type, manager in list(ActorRuntime._actor_managers.items()):
        for actor_id in list(manager._active_actors):
            try:
                await ActorRuntime.deactivate(actor_type, actor_id)
            except ValueError:
                pass  # deactivated meanwhile
            forgotten += 1
    return forgotten


class TracedActorHost(ActorGrpcHost):
    async def _run_session(self) -> None:
        # Before each registration (a reconnection after the first): whoever this stream's daprd
        # is, it hands us actors as placement sees them now, never as this process last had them.
        forgotten = await forget_active_actors()
        if forgotten:
            logger.warning("actor event stream (re)connecting: forgot %d active actor(s); they reload their state "
                           "when next called", forgotten)
        await super()._run_session()

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
