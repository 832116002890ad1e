"""Order intake over pub/sub, with a fake actor client and a fake dead-letter publisher."""

import json

import pytest
from cloudevents.sdk.event import v1

from order_service.intake import IntakeHandler, parse_request
from order_service.sidecar import ActorCallError

ORDER = {"order_id": "o-1", "customer_id": "c-1", "items": [{"sku": "apple", "quantity": 2, "unit_price_cents": 150}]}


def event(data, event_id="ev-1") -> v1.Event:
    e = v1.Event()
    e.SetEventID(event_id)
    e.SetSource("test")
    e.SetData(data)
    return e


class FakeActors:
    def __init__(self, answer=None, error: ActorCallError | None = None):
        self.calls = []
        self.answer = answer or {"status": "PLACED"}
        self.error = error

    def call(self, order_id, method, payload):
        self.calls.append((order_id, method, payload))
        if self.error:
            raise self.error
        return self.answer


class Letters(list):
    def __call__(self, letter):
        self.append(letter)


def test_a_valid_request_is_placed_through_the_actor_like_place_order():
    actors, letters = FakeActors(), Letters()
    reply = IntakeHandler(actors, letters)(event(json.dumps(ORDER).encode()))
    assert reply.status.name == "success"
    assert actors.calls == [("o-1", "place", ORDER)]
    assert letters == []


@pytest.mark.parametrize("data, says", [
    (b"not json", "data is not JSON"),
    (b"", "data is empty"),  # found by tests/fuzz/test_event_inputs.py: a structured event with "data": null
    (json.dumps([1]).encode(), "JSON object"),
    (json.dumps({**ORDER, "items": []}).encode(), "INVALID_ARGUMENT: items"),
    (json.dumps({**ORDER, "order_id": "has space"}).encode(), "INVALID_ARGUMENT: order_id"),
    (json.dumps({**ORDER, "surprise": 1}).encode(), "INVALID_ARGUMENT: surprise"),
    (json.dumps({**ORDER, "items": [dict(ORDER["items"][0], sku=f"s{n}") for n in range(101)]}).encode(),
     "INVALID_ARGUMENT: items"),
])
def test_an_invalid_request_goes_to_the_dead_letter_topic_with_its_reason_and_touches_no_actor(data, says):
    actors, letters = FakeActors(), Letters()
    reply = IntakeHandler(actors, letters)(event(data, "ev-bad"))
    assert reply.status.name == "success"  # handled: the dead letter carries it on
    assert actors.calls == []
    (letter,) = letters
    assert says in letter.reason and letter.event_id == "ev-bad"
    assert len(letter.data) <= 4096


def test_other_content_under_an_existing_id_is_dead_lettered_with_the_actors_reason():
    refusal = ActorCallError("ALREADY_EXISTS", "order o-1 exists with different content")
    letters = Letters()
    IntakeHandler(FakeActors(error=refusal), letters)(event(json.dumps(ORDER).encode()))
    assert letters[0].reason == "ALREADY_EXISTS: order o-1 exists with different content"


def test_an_unavailable_actor_is_retried_and_nothing_is_dead_lettered():
    letters = Letters()
    reply = IntakeHandler(FakeActors(error=ActorCallError("UNAVAILABLE", "sidecar away")), letters)(
        event(json.dumps(ORDER).encode()))
    assert reply.status.name == "retry"
    assert letters == []


def test_a_dead_letter_that_cannot_be_published_is_retried():
    def broken(letter):
        raise ConnectionError("broker away")

    assert IntakeHandler(FakeActors(), broken)(event(b"not json")).status.name == "retry"


def test_parse_request_accepts_bytes_text_and_objects():
    assert parse_request(json.dumps(ORDER)).order_id == "o-1"
    assert parse_request(ORDER).total_cents == 300
