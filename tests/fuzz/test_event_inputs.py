"""Generated events on every inbound topic (`order-approvals`, `order-requests`), published
through a sidecar as any publisher does: JSON and non-JSON data, CloudEvents in structured mode
(`application/cloudevents+json`) and raw (`rawPayload`, no envelope), wrong types, huge fields,
sizes near the broker's limit (NATS: 1 MiB per message).

Properties: the publish is either refused at the sidecar with a message, or the event is handled:
a malformed one ends on the topic's dead-letter topic (intake's with the reason, which is the one
the parser gives), a valid order request is placed exactly as sent, and order-service, the
subscriber, never crashes (same pid, still running). Each event carries a marker (its CloudEvent
id, or the start of a raw payload) to find it again among the dead letters.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from order_service.domain import ID_PATTERN
from order_service.intake import parse_request
from order_service.topics import (
    APPROVALS_DEAD_LETTER_TOPIC,
    APPROVALS_TOPIC,
    REQUESTS_DEAD_LETTER_TOPIC,
    REQUESTS_TOPIC,
)
from ordersaga.client import SagaClient
from ordersaga.eventfeed import feed_for
from tests.helpers.strategies import any_text, json_values, line_items, order_ids

BROKER_LIMIT = 1024 * 1024
EXAMPLES = 10  # each example is a batch of events, checked with one read of the dead letters
DEAD_LETTERS = {APPROVALS_TOPIC: APPROVALS_DEAD_LETTER_TOPIC, REQUESTS_TOPIC: REQUESTS_DEAD_LETTER_TOPIC}


@dataclass
class Event:
    topic: str
    kind: str  # json, text, structured, raw
    marker: str
    body: bytes
    content_type: str
    data: object  # what the subscriber should see as the event's data

    def metadata(self) -> dict:
        if self.kind == "raw":
            return {"rawPayload": "true"}
        if self.kind == "structured":
            return {}
        return {"cloudevent.id": self.marker}

    def tokens(self) -> list[str]:
        """How the marker shows in a dead letter: as text, or base64 when the data was binary."""
        return [self.marker, base64.b64encode(self.marker.encode()).decode()]


def _absent(value):
    """An order id that cannot be anyone's order: a fuzzed decision must never decide a real
    order, and a fuzzed valid request must place a new one."""
    import re

    if isinstance(value, str) and re.fullmatch(ID_PATTERN, value):
        return f"fz-{uuid.uuid4().hex[:16]}"
    return value


junk = st.one_of(json_values, any_text)
huge = st.sampled_from([100_000, BROKER_LIMIT - 4096, BROKER_LIMIT - 600, BROKER_LIMIT - 100]).map(lambda n: "x" * n)


@st.composite
def decisions(draw) -> dict:
    data = {"order_id": draw(st.one_of(order_ids, junk)),
            "decision": draw(st.one_of(st.sampled_from(["approve", "reject", "APPROVE", "maybe", ""]), junk)),
            "approver": draw(st.one_of(any_text, junk)), "reason": draw(st.one_of(any_text, junk, huge))}
    for name in draw(st.sets(st.sampled_from(sorted(data)))):  # some fields missing
        del data[name]
    data.update(draw(st.dictionaries(any_text, junk, max_size=2)))  # extra fields
    return {**data, "order_id": _absent(data.get("order_id"))} if "order_id" in data else data


@st.composite
def order_requests(draw) -> dict:
    data = {"order_id": _absent(draw(st.one_of(order_ids, junk))),
            "customer_id": draw(st.one_of(st.just("fuzz-customer"), order_ids, junk)),
            "items": draw(st.one_of(st.lists(line_items(), max_size=3), st.lists(junk, max_size=2), junk))}
    for name in draw(st.sets(st.sampled_from(sorted(data)), max_size=1)):
        del data[name]
    if draw(st.booleans()):
        data.update(draw(st.dictionaries(any_text, junk, max_size=1)))
    return data


@st.composite
def events(draw, topic: str) -> Event:
    marker = f"fz{uuid.uuid4().hex[:22]}"  # 24 characters: its base64 is a prefix of the data's
    kind = draw(st.sampled_from(["json", "text", "structured", "raw"]))
    if kind == "text":
        raw = draw(st.one_of(st.binary(max_size=300), any_text.map(str.encode)))
        return Event(topic, kind, marker, marker.encode() + raw, draw(st.sampled_from(
            ["text/plain", "application/octet-stream", "application/json", "application/xml"])), raw)
    data = draw(st.one_of(decisions() if topic == APPROVALS_TOPIC else order_requests(), json_values))
    if kind == "structured":
        envelope = {"specversion": "1.0", "id": marker, "source": "fuzz", "type": "fuzz.event",
                    "datacontenttype": "application/json", "data": data}
        envelope.update(draw(st.dictionaries(st.sampled_from(["subject", "time", "fuzzext"]), any_text, max_size=2)))
        return Event(topic, kind, marker, json.dumps(envelope).encode(), "application/cloudevents+json", data)
    if kind == "raw":
        return Event(topic, kind, marker, marker.encode() + json.dumps(data).encode(), "application/json", data)
    return Event(topic, kind, marker, json.dumps(data).encode(), "application/json", data)


batches = st.one_of(
    st.lists(st.sampled_from([APPROVALS_TOPIC, REQUESTS_TOPIC]).flatmap(events), min_size=4, max_size=12))


def publish(client: SagaClient, event: Event) -> str:
    """'' when the sidecar took the event, else its refusal (which must say something)."""
    try:
        client.publish(event.topic, event.body, content_type=event.content_type, metadata=event.metadata())
        return ""
    except urllib.error.HTTPError as error:
        message = error.read().decode(errors="replace")
        assert message.strip(), f"the sidecar refused {event.kind} {event.marker} with HTTP {error.code} and no message"
        return f"HTTP {error.code}: {message}"


def as_relayed(value):
    """JSON data as daprd passes it on: it decodes numbers into float64 and encodes them again
    (Go's encoding/json), so a whole-valued number below 1e21 arrives as an integer (`-5.0` is
    `-5`, `2**63 - 1` is `9223372036854775808`) and the type of a number is not kept."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list, dict)):
        return value
    if isinstance(value, (int, float)):
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 1e21 else number
    if isinstance(value, list):
        return [as_relayed(item) for item in value]
    return {key: as_relayed(item) for key, item in value.items()}


def expected_request(event: Event):
    """The order the intake should place for `event`, or None (it must be dead-lettered)."""
    if event.topic != REQUESTS_TOPIC or event.kind in ("text", "raw"):
        return None
    try:
        return parse_request(json.dumps(as_relayed(event.data)))
    except ValueError:
        return None


def strict_json(data) -> bool:
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        return False
    return True


def check_batch(stack, client: SagaClient, batch: list[Event]) -> None:
    before = stack.state().processes["order-service"].pid
    taken = [event for event in batch if not publish(client, event)]
    placed = {id(e): expected_request(e) for e in taken}
    refused = [e for e in taken if placed[id(e)] is None]

    for topic, dead_topic in DEAD_LETTERS.items():
        mine = [e for e in refused if e.topic == topic]
        if not mine:
            continue
        tokens = {token: e for e in mine for token in e.tokens()}
        bodies = feed_for(stack.state()).read_all(dead_topic, lambda body: any(t in body for t in tokens),
                                                  len(mine), timeout=90)
        found = {e.marker: body for body in bodies for t, e in tokens.items() if t in body}
        missing = [f"{e.kind} {e.content_type} {e.body[:200]!r}" for e in mine if e.marker not in found]
        assert not missing, f"{len(missing)} events on {topic} were never dead-lettered: {missing}"
        # Intake's own dead letters carry the reason. A raw payload is not a CloudEvent at all:
        # daprd forwards it to the dead-letter topic as it came, before the app sees it.
        for event in (e for e in mine if topic == REQUESTS_TOPIC and e.kind in ("json", "structured")):
            letter = json.loads(found[event.marker])["data"]
            if event.data is None:  # `"data": null` arrives as no data
                assert letter["reason"].startswith("data is empty"), letter["reason"]
                continue
            if not strict_json(event.data):  # NaN, Infinity: daprd passes such data on as a string
                assert letter["reason"].strip()
                continue
            try:  # as relayed: a JSON string stays a string, a whole number loses its ".0"
                parse_request(json.dumps(as_relayed(event.data)))
            except ValueError as error:
                assert letter["reason"] == str(error), (letter["reason"], str(error))

    for event in taken:
        request = placed[id(event)]
        if request is None:
            continue
        deadline = time.monotonic() + 60
        while (order := client.get(request.order_id)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert order is not None, f"a valid request was never placed: {event.body[:300]!r}"
        assert order["request"] == request.model_dump(mode="json"), "placed, but not as sent"

    state = stack.state()
    assert state.processes["order-service"].pid == before, "order-service restarted during the batch"
    assert stack.status()["processes"]["order-service"]["running"], "order-service died"


@pytest.mark.timeout(1800)
def test_inbound_events(stack, fuzz, figures):
    client = SagaClient(stack.state())

    def make():
        @given(batch=batches)
        @example(batch=[  # a decision just under the broker's limit: the dead letter must still fit
            Event(APPROVALS_TOPIC, "json", f"fz{uuid.uuid4().hex[:22]}", json.dumps(
                {"order_id": "fz-absent", "decision": "approve", "reason": "y" * (BROKER_LIMIT - 700)}).encode(),
                "application/json", None),
        ])
        @example(batch=[  # a whole-valued float: daprd relays it as an integer ("not int", not "not float")
            Event(REQUESTS_TOPIC, "structured", (marker := f"fz{uuid.uuid4().hex[:22]}"), json.dumps(
                {"specversion": "1.0", "id": marker, "source": "fuzz", "type": "fuzz.event",
                 "datacontenttype": "application/json", "data": -6789664792815703.0}).encode(),
                "application/cloudevents+json", -6789664792815703.0),
        ])
        @figures.counting
        def inbound(batch):
            figures.inputs += len(batch) - 1  # `counting` counted the batch as one input
            check_batch(stack, client, batch)
        return inbound

    try:
        for number in fuzz.rounds("events"):
            # Not shrunk: each example costs a read of the dead letters, and a batch is short.
            fuzz.explore(make, EXAMPLES, number, shrink=False)
    except BaseException:
        figures.violations += 1
        raise
