"""The actor host forgets the actors it holds whenever its event stream (re)connects: a sidecar
that restarted under this app must never get answers from the state an actor had before
(tests/chaos/test_sidecar_restart.py is the same on the real stack)."""

from __future__ import annotations

import asyncio

from dapr.actor.runtime.grpc_host import ActorGrpcHost
from dapr.actor.runtime.runtime import ActorRuntime

from order_service.actor_host import TracedActorHost


class FakeManager:
    def __init__(self, *actor_ids: str):
        self._active_actors = {actor_id: object() for actor_id in actor_ids}
        self.deactivated: list[str] = []

    async def deactivate_actor(self, actor_id) -> None:
        self._active_actors.pop(actor_id.id)
        self.deactivated.append(actor_id.id)


def test_each_session_starts_with_no_actor_held(monkeypatch):
    manager = FakeManager("o-1", "o-2")
    monkeypatch.setattr(ActorRuntime, "_actor_managers", {"OrderActor": manager})
    sessions = []

    async def session(self) -> None:  # the SDK's: register, then dispatch calls until the stream ends
        sessions.append(dict(manager._active_actors))
        manager._active_actors["o-3"] = object()  # an actor activated during the session

    monkeypatch.setattr(ActorGrpcHost, "_run_session", session)
    host = TracedActorHost(app_port=0)
    asyncio.run(host._run_session())
    asyncio.run(host._run_session())  # the stream ended; the host reconnects
    assert sessions == [{}, {}]
    assert manager.deactivated == ["o-1", "o-2", "o-3"]
