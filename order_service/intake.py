"""Orders arriving as CloudEvents on `order-requests`, placed exactly as PlaceOrder places them.

The same validation and the same actor call, so the same rules: the same order again changes
nothing (the actor answers with the order as it is, and starts no second saga). What can never
succeed, however often it is delivered (an invalid request, other content under an existing
id), goes to `order-requests-deadletter` as a message that says why, and is logged; Dapr's own
dead-lettering would forward the event without its reason. An actor, sidecar or workflow engine
that is briefly unavailable answers `retry`: the broker delivers the event again later, and an
event published while order-service is down waits in the broker until it is back. So does an
event that comes while too many sagas are at work (admission control).
"""

from __future__ import annotations

import logging

from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse

from apphost.observability import REQUESTS_REFUSED
from order_service import admission, event_data
from order_service.dead_letters import DeadLetter, PublishDeadLetter, letter
from order_service.domain import OrderRequest
from order_service.metrics import DEAD_LETTERS
from order_service.sidecar import ActorCallError, Actors

log = logging.getLogger("order_service.intake")
_NEVER = {"INVALID_ARGUMENT", "ALREADY_EXISTS"}  # refusals a redelivery cannot change
__all__ = ["DeadLetter", "IntakeHandler", "parse_request"]


class IntakeHandler:
    def __init__(self, actors: Actors, dead_letters: PublishDeadLetter):
        self._actors = actors
        self._dead_letters = dead_letters

    def __call__(self, event: v1.Event) -> TopicEventResponse:
        try:
            request = parse_request(event.Data())
        except ValueError as error:
            return self._refuse(event, str(error), order_id="-")
        refusal = admission.current().refusal()
        if refusal:  # admission control: the event waits in the broker and comes again
            REQUESTS_REFUSED.labels("intake", "RESOURCE_EXHAUSTED").inc()
            log.info("intake event=%s order=%s will be retried: %s", event.EventID(), request.order_id, refusal)
            return TopicEventResponse("retry")
        try:
            reply = self._actors.call(request.order_id, "place", request.model_dump(mode="json"))
        except ActorCallError as error:
            if error.code in _NEVER:
                return self._refuse(event, f"{error.code}: {error.message}", order_id=request.order_id)
            log.warning("intake event=%s order=%s will be retried: %s", event.EventID(), request.order_id, error)
            return TopicEventResponse("retry")
        log.info("order=%s step=intake outcome=ACCEPTED status=%s event=%s", request.order_id, reply["status"],
                 event.EventID())
        return TopicEventResponse("success")

    def _refuse(self, event: v1.Event, reason: str, order_id: str) -> TopicEventResponse:
        try:
            self._dead_letters(letter(event, reason))
        except Exception as error:  # noqa: BLE001 - the broker's client raises many kinds
            log.warning("intake event=%s order=%s refused (%s) but its dead letter was not published, retrying: %s",
                        event.EventID(), order_id, reason, error)
            return TopicEventResponse("retry")
        DEAD_LETTERS.labels("intake", _code(reason)).inc()
        log.warning("intake event=%s order=%s refused, sent to the dead-letter topic: %s", event.EventID(), order_id,
                    reason)
        return TopicEventResponse("success")  # handled: the dead letter is out


def _code(reason: str) -> str:
    """The gRPC status name a refusal's reason starts with (a metric label of few values)."""
    head = reason.split(":", 1)[0].strip()
    return head if head.isupper() and head.replace("_", "").isalpha() else "INVALID_ARGUMENT"


def parse_request(data: object) -> OrderRequest:
    """The order in an event's data; ValueError (with the reason, worded as PlaceOrder's
    INVALID_ARGUMENT) when it is not one."""
    return event_data.parse(data, OrderRequest, prefix="INVALID_ARGUMENT: ")
