"""Publishing lifecycle events on `order-events` (DESIGN.md), from activities and the actor."""

from __future__ import annotations

from dapr.proto import api_v1
from opentelemetry.trace import SpanKind

from apphost.observability import span
from order_service.dapr_clients import dapr_stub, sidecar_metadata
from order_service.messages import LifecycleEvent
from order_service.topics import EVENTS_TOPIC, PUBSUB


async def publish(event: LifecycleEvent) -> None:
    """Publish with a stable CloudEvent id (`<order>.<type>`), so consumers (and JetStream's
    duplicate window) drop the copy a retried activity or reminder sends. Through the raw API
    stub, which takes the span's `traceparent` as metadata: daprd puts it into the CloudEvent,
    so a subscriber's spans join the order's trace."""
    with span(f"publish {EVENTS_TOPIC} {event.type}", order_id=event.order_id, kind=SpanKind.PRODUCER,
              attributes={"messaging.destination.name": EVENTS_TOPIC, "ordersaga.event": event.type}):
        await dapr_stub().PublishEvent(api_v1.PublishEventRequest(
            pubsub_name=PUBSUB, topic=EVENTS_TOPIC, data=event.model_dump_json().encode(),
            data_content_type="application/json",
            metadata={"cloudevent.id": f"{event.order_id}.{event.type}",
                      "cloudevent.type": f"ordersaga.order.{event.type}"},
        ), metadata=sidecar_metadata(), timeout=30)
