"""Pub/sub names owned by order-service: the approvals and order requests it consumes, and the
events it publishes.

Part of the external contract in DESIGN.md; other tools publish and subscribe by these names.
"""

PUBSUB = "orderpubsub"
APPROVALS_TOPIC = "order-approvals"
APPROVALS_DEAD_LETTER_TOPIC = "order-approvals-deadletter"
EVENTS_TOPIC = "order-events"
# Orders placed by publishing (any sidecar), and the refused ones with their reason.
REQUESTS_TOPIC = "order-requests"
REQUESTS_DEAD_LETTER_TOPIC = "order-requests-deadletter"

ALL_TOPICS = (APPROVALS_TOPIC, APPROVALS_DEAD_LETTER_TOPIC, EVENTS_TOPIC, REQUESTS_TOPIC, REQUESTS_DEAD_LETTER_TOPIC)
DEAD_LETTER_TOPICS = (APPROVALS_DEAD_LETTER_TOPIC, REQUESTS_DEAD_LETTER_TOPIC)
