"""The retry of a saga that ended NEEDS_ATTENTION, once its cause is fixed: a workflow of its own
that runs again what the saga left (`Leftover`) and ends the entity as the saga would have.

`retry_workflow(rules, activity)` gives one for the default Timeline; an entity with messages of
its own writes the three lines of it with its own input and Timeline (`Saga.retry` is the body).
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel

from dapr_saga.models import Leftover
from dapr_saga.saga import Saga
from dapr_saga.steps import Rules
from dapr_saga.timeline import Timeline


class RetryRequest(BaseModel):
    """The input of a retry workflow: the entity, what its saga left, which retry this is (its
    timeline entries are kept apart by it) and who asked."""

    entity_id: str
    leftover: Leftover
    attempt: int = 1
    retried_by: str = ""


def retry_workflow(rules: Rules, activity: str, *, label: str = "entity") -> Callable:
    """A retry workflow for sagas on the default Timeline (updates to `activity`)."""
    def retry(ctx, request: RetryRequest):
        request = RetryRequest.model_validate(request)
        saga = Saga(ctx, rules, Timeline(request.entity_id, activity, label=label),
                    key_prefix=f"retry {request.attempt}: ")
        return (yield from saga.retry(request.leftover, attempt=request.attempt, by=request.retried_by))
    return retry
