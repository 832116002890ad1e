"""What the saga-path tests on the cluster share: amounts, the timeline's steps, the events."""

from __future__ import annotations

import json

from order_service.topics import EVENTS_TOPIC
from ordersaga.eventfeed import KafkaFeed

SMALL = 1_250  # cents
LARGE = 150_000  # cents: above the 1000.00 approval threshold


def steps(order: dict) -> list[tuple[str, str]]:
    return [(entry["step"], entry["outcome"]) for entry in order["timeline"]]


def event_feed(installer) -> KafkaFeed:
    """The lifecycle events, read from the cluster's Kafka as a consumer outside Dapr reads them."""
    return KafkaFeed(installer.connections()["ORDERSAGA_KAFKA_BROKERS"])


def events_of(feed: KafkaFeed, order_id: str, count: int) -> list[dict]:
    bodies = feed.read_all(EVENTS_TOPIC, lambda body: f'"{order_id}"' in body, count, timeout=60)
    return [json.loads(body) for body in bodies]
