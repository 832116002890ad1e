"""Per-event-loop Dapr connections, reused: aio channels and clients are bound to the loop that
created them, and creating a client also waits for the sidecar's health endpoint, which is too
much work to repeat for every activity or event."""

from __future__ import annotations

import asyncio
import os
from typing import Callable, TypeVar

import grpc
from dapr.aio.clients import DaprClient
from dapr.proto import api_service_v1

from apphost.observability import trace_metadata

T = TypeVar("T")
_cache: dict[tuple[str, int], object] = {}


def _per_loop(kind: str, create: Callable[[], T]) -> T:
    key = (kind, id(asyncio.get_running_loop()))
    if key not in _cache:
        _cache[key] = create()
    return _cache[key]  # type: ignore[return-value]


def dapr_client() -> DaprClient:
    """The Dapr client of the running event loop."""
    return _per_loop("client", DaprClient)


def sidecar_channel() -> grpc.aio.Channel:
    """A channel to our own sidecar, for gRPC service invocation (`dapr-app-id` metadata)."""
    host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
    return _per_loop("channel", lambda: grpc.aio.insecure_channel(f"{host}:{os.environ['DAPR_GRPC_PORT']}"))


def sidecar_metadata() -> tuple:
    """What a raw call to our sidecar carries: the API token (the raw stub has no interceptor
    adding it) and the current span's `traceparent`, so daprd's spans join the order's trace."""
    token = os.environ.get("DAPR_API_TOKEN")
    return ((("dapr-api-token", token),) if token else ()) + trace_metadata()


def dapr_stub() -> api_service_v1.DaprStub:
    """Dapr's own gRPC API on that channel, for calls the aio client lacks (actor invocation).
    Kept: building the stub registers every method of the API, which is not free."""
    return _per_loop("stub", lambda: api_service_v1.DaprStub(sidecar_channel()))
