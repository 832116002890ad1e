"""Pub/sub names owned by order-service: the approvals it consumes and the events it publishes.

Part of the external contract in DESIGN.md; other tools publish and subscribe by these names.
"""

PUBSUB = "orderpubsub"
APPROVALS_TOPIC = "order-approvals"
APPROVALS_DEAD_LETTER_TOPIC = "order-approvals-deadletter"
EVENTS_TOPIC = "order-events"

ALL_TOPICS = (APPROVALS_TOPIC, APPROVALS_DEAD_LETTER_TOPIC, EVENTS_TOPIC)
