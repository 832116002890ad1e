"""The JetStream streams cover every topic once, and each subscribed topic has a stream of its
own (Dapr's JetStream component gives an app one durable consumer name per stream)."""

from order_service.topics import ALL_TOPICS, APPROVALS_TOPIC, DEAD_LETTER_TOPICS, REQUESTS_TOPIC
from ordersaga.stack.jetstream import STREAMS

SUBSCRIBED = (APPROVALS_TOPIC, REQUESTS_TOPIC)  # by order-service


def test_every_topic_is_in_exactly_one_stream():
    subjects = [s for subjects in STREAMS.values() for s in subjects]
    assert sorted(subjects) == sorted(ALL_TOPICS)


def test_no_stream_holds_two_subscribed_topics_and_dead_letters_stand_apart():
    for name, subjects in STREAMS.items():
        assert len(set(subjects) & set(SUBSCRIBED)) <= 1, name
        assert not (set(subjects) & set(DEAD_LETTER_TOPICS)) or set(subjects) <= set(DEAD_LETTER_TOPICS), name
