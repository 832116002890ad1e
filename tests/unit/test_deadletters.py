"""Dead letters without a broker: what a letter says, which are chosen, and a redrive that sends
each event once, under an id naming the redrive; and the approvals subscription that puts its
reason on every refusal."""

from __future__ import annotations

import json

from cloudevents.sdk.event import v1

from order_service.approvals import ApprovalHandler
from order_service.sidecar import ActorCallError
from ordersaga import deadletters


def ours(event_id: str, reason: str, data: dict | str) -> str:
    letter = {"event_id": event_id, "source": "x", "reason": reason,
              "data": data if isinstance(data, str) else json.dumps(data)}
    return json.dumps({"id": f"{event_id}.refused", "time": "2026-01-01T00:00:00Z", "data": letter})


def test_a_letter_says_why_and_what_and_a_forwarded_one_says_it_has_no_reason():
    letter = deadletters.parse("approvals", "js:1", ours("e-1", "NOT_FOUND: order o-1 does not exist",
                                                         {"order_id": "o-1", "decision": "approve"}))
    assert (letter.reason, letter.order_id, letter.original_id, letter.redriven_by) == (
        "NOT_FOUND: order o-1 does not exist", "o-1", "e-1", "")
    again = deadletters.parse("approvals", "js:2", ours("e-1.redrive-abc", "MALFORMED: x", "not json"))
    assert (again.original_id, again.redriven_by, again.order_id) == ("e-1", "abc", "")
    forwarded = deadletters.parse("requests", "kafka:0:3", json.dumps({"id": "e-9", "data": {"order_id": "o-9"}}))
    assert forwarded.reason == deadletters.FORWARDED and forwarded.order_id == "o-9"


def test_a_redrive_sends_each_event_once_back_to_its_topic():
    letters = [deadletters.parse("approvals", "js:1", ours("e-1", "NOT_FOUND", {"order_id": "o-1"})),
               deadletters.parse("approvals", "js:2", ours("e-1", "NOT_FOUND", {"order_id": "o-1"})),
               deadletters.parse("requests", "js:3", ours("e-2", "INVALID_ARGUMENT", "{bad"))]
    sent = []
    redrive_id, report = deadletters.redrive(letters, lambda *args: sent.append(args), redrive_id="r1")
    assert [outcome for _, outcome, _ in report] == ["SENT", "SKIPPED", "SENT"]
    assert sent == [("order-approvals", b'{"order_id": "o-1"}', "application/json", "e-1.redrive-r1"),
                    ("order-requests", b"{bad", "text/plain", "e-2.redrive-r1")]
    assert [x.id for x in deadletters.select(letters, reason="invalid")] == ["js:3"]
    assert [x.id for x in deadletters.select(letters, ids=("js:2",))] == ["js:2"]


def test_a_refused_approval_goes_to_the_dead_letters_with_its_reason():
    class Actors:
        def call(self, order_id, method, payload=None):
            raise ActorCallError("NOT_FOUND", f"order {order_id} does not exist")

    published = []
    handler = ApprovalHandler(Actors(), published.append)
    event = v1.Event()
    event.SetEventID("e-1")
    event.SetData(json.dumps({"order_id": "o-1", "decision": "approve"}).encode())
    assert handler(event).status.name == "success"
    (letter,) = published
    assert (letter.event_id, letter.reason) == ("e-1", "NOT_FOUND: order o-1 does not exist")
    bad = v1.Event()
    bad.SetEventID("e-2")
    bad.SetData(b"{")
    handler(bad)
    assert published[-1].reason.startswith("MALFORMED: data is not JSON")
