"""Publishing lifecycle events on `order-events` (DESIGN.md), from activities and the actor."""

from __future__ import annotations

from order_service.dapr_clients import dapr_client
from order_service.messages import LifecycleEvent
from order_service.topics import EVENTS_TOPIC, PUBSUB


async def publish(event: LifecycleEvent) -> None:
    """Publish with a stable CloudEvent id (`<order>.<type>`), so consumers (and JetStream's
    duplicate window) drop the copy a retried activity or reminder sends."""
    await dapr_client().publish_event(
        PUBSUB, EVENTS_TOPIC, event.model_dump_json(), data_content_type="application/json",
        publish_metadata={"cloudevent.id": f"{event.order_id}.{event.type}",
                          "cloudevent.type": f"ordersaga.order.{event.type}"},
    )
