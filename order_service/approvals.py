"""Approval decisions arriving as CloudEvents on `order-approvals`, handed to the order's actor.

The actor decides (first decision wins, orders not waiting are refused) and raises the event
into the saga. The pub/sub status steers redelivery: `success` acknowledges (also for
duplicates); `retry` when the actor, workflow engine or sidecar is briefly unavailable; `drop`,
which Dapr forwards to the dead-letter topic, for events that can never succeed (malformed,
unknown order, order not waiting for approval), with a log line saying why.
"""

from __future__ import annotations

import logging

from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse

from order_service import event_data
from order_service.messages import ApprovalDecision
from order_service.metrics import DEAD_LETTERS
from order_service.sidecar import ActorCallError, Actors

log = logging.getLogger("order_service.approvals")
_FINAL = {"NOT_FOUND", "FAILED_PRECONDITION", "INVALID_ARGUMENT"}


class ApprovalHandler:
    def __init__(self, actors: Actors):
        self._actors = actors

    def __call__(self, event: v1.Event) -> TopicEventResponse:
        event_id = event.EventID()
        try:
            decision = parse_decision(event.Data())
        except ValueError as error:
            DEAD_LETTERS.labels("approvals", "MALFORMED").inc()
            log.warning("approval event=%s dropped to the dead-letter topic: %s", event_id, error)
            return TopicEventResponse("drop")
        try:
            reply = self._actors.call(decision.order_id, "decide", decision.model_dump(mode="json"))
        except ActorCallError as error:
            if error.code in _FINAL:
                DEAD_LETTERS.labels("approvals", error.code).inc()
                log.warning("approval event=%s order=%s dropped to the dead-letter topic: %s",
                            event_id, decision.order_id, error)
                return TopicEventResponse("drop")
            log.warning("approval event=%s order=%s will be retried: %s", event_id, decision.order_id, error)
            return TopicEventResponse("retry")
        log.info("order=%s step=approval outcome=%s decision=%s approver=%s event=%s", decision.order_id,
                 reply["outcome"].upper(), decision.decision, decision.approver, event_id)
        return TopicEventResponse("success")


def parse_decision(data: object) -> ApprovalDecision:
    """The decision in an event's data; ValueError (with the reason) when it is not one."""
    return event_data.parse(data, ApprovalDecision)
