"""dapr_saga: sagas on Dapr workflows, and a test harness that needs no sidecar (`dapr_saga.testing`).

    RESERVE = Step("reserve", do="reserve_stock", undo="release_stock")
    PAY = Step("pay", do="charge_card", undo="refund_card", fails_as="PAYMENT_FAILED")

    def checkout(ctx, order):
        saga = Saga(ctx, RULES, Timeline(order["id"], "record_order"))
        yield from saga.run_parallel([RESERVE(order), PAY(order)])
        return (yield from saga.complete())

Steps (do, undo, retry policy, timeout: unknown means undone), parallel groups that wait for all
and undo per part, compensation in reverse, NEEDS_ATTENTION with what is left (`Leftover`, run
again by `Saga.retry`), gated steps an entity may refuse, batched timeline notes, and stable
registration names with versions (`Workflow`, `register`). See README.md.
"""

from dapr_saga.models import (
    CANCELLED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    NEEDS_ATTENTION,
    REFUSED,
    Ending,
    Event,
    Gate,
    Leftover,
    Note,
    PlannedCall,
    StepResult,
    Update,
)
from dapr_saga.registry import Workflow, register
from dapr_saga.retry import RetryRequest, retry_workflow
from dapr_saga.saga import (
    INTERNAL_ERROR,
    EventNotPublished,
    Saga,
    SagaCancelled,
    SagaFailed,
    SagaStopped,
    ServiceUnavailable,
    saga_workflow,
)
from dapr_saga.steps import TECHNICAL_ERRORS, Call, Rules, Step
from dapr_saga.timeline import Timeline

__all__ = [
    "CANCELLED", "COMPENSATING", "COMPLETED", "FAILED", "INTERNAL_ERROR", "NEEDS_ATTENTION", "REFUSED",
    "TECHNICAL_ERRORS", "Call", "Ending", "Event", "EventNotPublished", "Gate", "Leftover", "Note",
    "PlannedCall", "RetryRequest", "Rules", "Saga", "SagaCancelled", "SagaFailed", "SagaStopped",
    "ServiceUnavailable", "Step", "StepResult", "Timeline", "Update", "Workflow", "register", "retry_workflow",
    "saga_workflow",
]
