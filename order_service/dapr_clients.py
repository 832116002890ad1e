"""One aio DaprClient per event loop, reused: creating a client opens a channel and first
waits for the sidecar's health endpoint, which is too much work to repeat for every event."""

from __future__ import annotations

import asyncio

from dapr.aio.clients import DaprClient

_clients: dict[int, DaprClient] = {}


def dapr_client() -> DaprClient:
    """The client of the running event loop (aio channels are bound to their loop)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _clients:
        _clients[loop_id] = DaprClient()
    return _clients[loop_id]
