"""What order-service's dead-letter topics carry: the refused event, and why.

Both subscriptions (approvals, order intake) publish their refusals themselves, to
`order-approvals-deadletter` and `order-requests-deadletter`, under the refused event's id with
`.refused` after it: Dapr's own dead-lettering forwards an event without its reason. (What keeps
failing technically until the broker gives up is still forwarded by Dapr, as it came.) A dead
letter can be sent back to its topic once its cause is fixed (`ordersaga deadletters redrive`):
the event goes back as it came, under an id naming the redrive, so each is sent at most once per
redrive, and one that is still refused comes back here with its reason.
"""

from __future__ import annotations

import json
from typing import Callable

from pydantic import BaseModel

from order_service.topics import PUBSUB

_KEPT_BYTES = 4096  # of the refused event's data, in its dead letter


class DeadLetter(BaseModel):
    event_id: str
    source: str = ""
    reason: str
    data: str  # the event's data as text, cut at 4 KiB


PublishDeadLetter = Callable[[DeadLetter], None]


def letter(event, reason: str) -> DeadLetter:
    """The dead letter of a refused CloudEvent."""
    return DeadLetter(event_id=event.EventID() or "", source=event.Source() or "", reason=reason,
                      data=as_text(event.Data())[:_KEPT_BYTES])


def publisher(sidecar, topic: str, event_type: str) -> PublishDeadLetter:
    """Publishes dead letters on `topic` through `sidecar`, under a stable id (the refused
    event's), so a redelivered refusal is one dead letter to consumers that deduplicate."""
    def publish(dead: DeadLetter) -> None:
        sidecar.publish_sync(PUBSUB, topic, dead.model_dump_json().encode(), event_id=f"{dead.event_id}.refused",
                             event_type=event_type)
    return publish


def as_text(data: object) -> str:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode(errors="replace")
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data)
    except (TypeError, ValueError):
        return repr(data)
