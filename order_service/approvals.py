"""Approval decisions arriving as CloudEvents on `order-approvals`, raised into the saga.

The pub/sub status steers redelivery: `success` acknowledges; `retry` when the workflow engine
or sidecar is briefly unavailable; `drop` (to the dead-letter topic) for events that can never
succeed, with a log line saying why.
"""

from __future__ import annotations

import json
import logging

import grpc
from cloudevents.sdk.event import v1
from dapr.clients.grpc._response import TopicEventResponse
from dapr.ext.workflow import DaprWorkflowClient
from pydantic import ValidationError

from order_service.domain import saga_instance_id
from order_service.messages import ApprovalDecision
from order_service.saga import APPROVAL_EVENT

log = logging.getLogger("order_service.approvals")


class ApprovalHandler:
    def __init__(self, client_factory=DaprWorkflowClient):
        self._client_factory = client_factory
        self._client: DaprWorkflowClient | None = None

    def __call__(self, event: v1.Event) -> TopicEventResponse:
        event_id = event.EventID()
        try:
            decision = parse_decision(event.Data())
        except ValueError as error:
            log.warning("approval event id=%s dropped to dead-letter: %s", event_id, error)
            return TopicEventResponse("drop")
        try:
            self._workflows().raise_workflow_event(
                saga_instance_id(decision.order_id), APPROVAL_EVENT, data=decision.model_dump(mode="json")
            )
        except grpc.RpcError as error:
            log.warning("approval event id=%s for order=%s will be retried: %s", event_id, decision.order_id, error)
            return TopicEventResponse("retry")
        log.info("order=%s step=approval outcome=RECEIVED decision=%s approver=%s event=%s",
                 decision.order_id, decision.decision, decision.approver, event_id)
        return TopicEventResponse("success")

    def _workflows(self) -> DaprWorkflowClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client


def parse_decision(data: object) -> ApprovalDecision:
    """The decision in an event's data; ValueError (with the reason) when it is not one."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"data is not JSON: {error}") from None
    elif isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as error:
            raise ValueError(f"data is not JSON: {error}") from None
    try:
        return ApprovalDecision.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc'])) or 'data'}: {first['msg']}") from None
