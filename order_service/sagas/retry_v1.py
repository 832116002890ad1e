"""The retry of an order that NEEDS_ATTENTION (RetryOrder), version 1: once the cause is fixed,
the calls its saga could not finish run again, in order, and the order ends as the saga would
have (FAILED or CANCELLED with its reason after a compensation, COMPLETED after a late commit);
a call that still fails leaves it NEEDS_ATTENTION with what is still left. The body is the
kit's (`Saga.retry`). Frozen: change it only behind a patch."""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
from dapr_saga import Rules, Saga

from order_service.messages import RetryInput
from order_service.sagas.timeline import OrderTimeline

TECHNICAL_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=500), max_number_of_attempts=4,
                                 backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=5))
BOOKKEEPING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=12,
                                   backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=30))
ENDING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=70,
                              backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=60))
RULES = Rules(step_retry=TECHNICAL_RETRY, update_retry=BOOKKEEPING_RETRY, ending_retry=ENDING_RETRY,
              technical_errors=frozenset({"ServiceUnavailable", "OrderNotUpdated", "AioRpcError",
                                          "_InactiveRpcError", "RpcError"}),
              faults_patch="faults-stop-the-saga", ending_patch="ending-retried-longer")


def retry_saga(ctx: wf.DaprWorkflowContext, retry_input: RetryInput):
    retry = RetryInput.model_validate(retry_input)
    saga = Saga(ctx, RULES, OrderTimeline(retry.order), key_prefix=f"retry {retry.attempt}: ")
    return (yield from saga.retry(retry.unfinished, attempt=retry.attempt, by=retry.retried_by))
