"""Publishing lifecycle events on `order-events` (DESIGN.md), from activities and the actor."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from apphost.observability import span
from order_service.messages import LifecycleEvent
from order_service.sidecar import sidecar
from order_service.topics import EVENTS_TOPIC, PUBSUB


async def publish(event: LifecycleEvent) -> None:
    """Publish with a stable CloudEvent id (`<order>.<type>`), so consumers (and JetStream's
    duplicate window) drop the copy a retried activity or reminder sends. The span's
    `traceparent` rides along: daprd puts it into the CloudEvent, so a subscriber's spans join the
    order's trace."""
    with span(f"publish {EVENTS_TOPIC} {event.type}", order_id=event.order_id, kind=SpanKind.PRODUCER,
              attributes={"messaging.destination.name": EVENTS_TOPIC, "ordersaga.event": event.type}):
        await sidecar().publish(PUBSUB, EVENTS_TOPIC, event.model_dump_json().encode(),
                                event_id=f"{event.order_id}.{event.type}", event_type=f"ordersaga.order.{event.type}")
