"""The retry of an order that NEEDS_ATTENTION, as the business runs it (RetryOrder).

Once the cause is fixed (shipping is back, say), the calls its saga could not finish run
again, in the order the saga would have run them, and the order ends as the saga would have
ended it: FAILED (or CANCELLED) with its original reason after a completed compensation, or
COMPLETED after a late stock commit. A call that still fails leaves the order in
NEEDS_ATTENTION again, with what is still left, for the next retry.

Every call is idempotent by its business key, so running again one that did happen is safe.
Like the saga, this workflow is replayed from history: no I/O here, only activities.
"""

from __future__ import annotations

import dapr.ext.workflow as wf

from order_service.domain import OrderStatus
from order_service.messages import RetryInput, SagaInput
from order_service.saga import Call, Saga

RETRY_SAGA_NAME = "order_saga_retry"


def retry_saga(ctx: wf.DaprWorkflowContext, retry_input: RetryInput):
    retry = RetryInput.model_validate(retry_input)
    unfinished = retry.unfinished
    # A retry waits for no approval: the saga's approval settings do not matter here.
    saga = Saga(ctx, SagaInput(order=retry.order, approval_threshold_cents=0, approval_timeout_s=0,
                               step_timeout_s=retry.step_timeout_s), key_prefix=f"retry {retry.attempt}: ")
    saga.left_on_fault = unfinished  # a fault stops the retry with all of it still to do (each call is idempotent)

    saga.note("retry", "STARTED", status=unfinished.resume_status,
              detail=f"attempt {retry.attempt}, by {retry.retried_by or 'unknown'}")
    yield from saga.update()
    still_stuck = []
    for planned in unfinished.calls:
        result = yield from saga.run(Call(planned.step, planned.activity, planned.input, None))
        if not result.ok:
            still_stuck.append(planned)

    if still_stuck:
        names = ", ".join(call.step for call in still_stuck)
        left = unfinished.model_copy(update={"calls": still_stuck})
        return (yield from saga.needs_attention(f"retry {retry.attempt} could not: {names}", left))
    ending = unfinished.ending
    if ending.status == OrderStatus.COMPLETED:
        return (yield from saga.complete(tracking_number=ending.tracking_number))
    return (yield from saga.finish(ending.status, ending.reason))
