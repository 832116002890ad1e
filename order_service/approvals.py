"""Approval decisions arriving as CloudEvents on `order-approvals`, handed to the order's actor.

The actor decides (first decision wins, orders not waiting are refused) and tells the saga.
The pub/sub status steers redelivery: `success` acknowledges (also for duplicates); `retry` when
the actor, workflow engine or sidecar is briefly unavailable. An event that can never succeed
(malformed, unknown order, order not waiting for approval) goes to `order-approvals-deadletter`
with the reason (order_service/dead_letters.py), and is logged; if that publish fails, the
event is retried.
"""

from __future__ import annotations

import logging

from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse

from order_service import event_data
from order_service.dead_letters import PublishDeadLetter, letter
from order_service.messages import ApprovalDecision
from order_service.metrics import DEAD_LETTERS
from order_service.sidecar import ActorCallError, Actors

log = logging.getLogger("order_service.approvals")
_FINAL = {"NOT_FOUND", "FAILED_PRECONDITION", "INVALID_ARGUMENT"}


class ApprovalHandler:
    def __init__(self, actors: Actors, dead_letters: PublishDeadLetter):
        self._actors = actors
        self._dead_letters = dead_letters

    def __call__(self, event: v1.Event) -> TopicEventResponse:
        event_id = event.EventID()
        try:
            decision = parse_decision(event.Data())
        except ValueError as error:
            return self._refuse(event, "MALFORMED", f"MALFORMED: {error}", "-")
        try:
            reply = self._actors.call(decision.order_id, "decide", decision.model_dump(mode="json"))
        except ActorCallError as error:
            if error.code in _FINAL:
                return self._refuse(event, error.code, f"{error.code}: {error.message}", decision.order_id)
            log.warning("approval event=%s order=%s will be retried: %s", event_id, decision.order_id, error)
            return TopicEventResponse("retry")
        log.info("order=%s step=approval outcome=%s decision=%s approver=%s event=%s", decision.order_id,
                 reply["outcome"].upper(), decision.decision, decision.approver, event_id)
        return TopicEventResponse("success")


    def _refuse(self, event: v1.Event, code: str, reason: str, order_id: str) -> TopicEventResponse:
        try:
            self._dead_letters(letter(event, reason))
        except Exception as error:  # noqa: BLE001 - the broker's client raises many kinds
            log.warning("approval event=%s order=%s refused (%s) but its dead letter was not published, "
                        "retrying: %s", event.EventID(), order_id, reason, error)
            return TopicEventResponse("retry")
        DEAD_LETTERS.labels("approvals", code).inc()
        log.warning("approval event=%s order=%s refused, sent to the dead-letter topic: %s", event.EventID(),
                    order_id, reason)
        return TopicEventResponse("success")  # handled: the dead letter is out


def parse_decision(data: object) -> ApprovalDecision:
    """The decision in an event's data; ValueError (with the reason) when it is not one."""
    return event_data.parse(data, ApprovalDecision)
