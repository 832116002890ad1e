"""The order saga: reserve stock, wait for approval when the order is large, commit, record.

Workflow code is replayed from history, so it stays deterministic: no I/O, no clocks, no
environment; every side effect is an activity. It reads top to bottom as the business process.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dapr.ext.workflow as wf

from order_service.domain import FailureReason, OrderStatus
from order_service.messages import ApprovalDecision, SagaInput, StepRecord, StockLine, StockResult

SAGA_NAME = "order_saga"
APPROVAL_EVENT = "approval"

# Technical failures (a service or sidecar briefly away) are retried with exponential backoff.
TECHNICAL_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    max_number_of_attempts=5,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=10),
)

log = logging.getLogger("order_service.saga")


def order_saga(ctx: wf.DaprWorkflowContext, saga: SagaInput):
    saga = SagaInput.model_validate(saga)
    order = saga.order
    lines = [StockLine(order_id=order.order_id, sku=i.sku, quantity=i.quantity) for i in order.items]

    def step(name: str, outcome: str, *, status: str = "", reason: str = "", detail: str = ""):
        if not ctx.is_replaying:
            log.info("order=%s step=%s outcome=%s %s", order.order_id, name, outcome, detail)
        record = StepRecord(order_id=order.order_id, step=name, outcome=outcome, detail=detail,
                            key=f"{name}:{outcome}", status=status, reason=reason)
        return ctx.call_activity("record_step", input=record, retry_policy=TECHNICAL_RETRY)

    yield step("reserve", "STARTED", status=OrderStatus.RESERVING)
    results = yield wf.when_all(
        [ctx.call_activity("reserve_stock", input=line, retry_policy=TECHNICAL_RETRY) for line in lines]
    )
    results = [StockResult.model_validate(r) for r in results]
    reserved = [line for line, result in zip(lines, results) if result.ok]
    if len(reserved) < len(lines):
        short = ", ".join(line.sku for line, result in zip(lines, results) if not result.ok)
        yield from _release(ctx, reserved)
        yield step("reserve", "FAILED", status=OrderStatus.FAILED, reason=FailureReason.OUT_OF_STOCK,
                   detail=f"out of stock: {short}")
        return OrderStatus.FAILED.value
    yield step("reserve", "DONE")

    if order.total_cents >= saga.approval_threshold_cents:
        yield step("approval", "REQUESTED", status=OrderStatus.AWAITING_APPROVAL)
        decision_task = ctx.wait_for_external_event(APPROVAL_EVENT)
        timeout_task = ctx.create_timer(timedelta(seconds=saga.approval_timeout_s))
        winner = yield wf.when_any([decision_task, timeout_task])
        if winner is timeout_task:
            yield from _release(ctx, reserved)
            yield step("approval", "TIMED_OUT", status=OrderStatus.FAILED, reason=FailureReason.APPROVAL_TIMEOUT)
            return OrderStatus.FAILED.value
        decision = ApprovalDecision.model_validate(decision_task.get_result())
        if decision.decision != "approve":
            yield from _release(ctx, reserved)
            yield step("approval", "REJECTED", status=OrderStatus.FAILED, reason=FailureReason.APPROVAL_REJECTED,
                       detail=f"by {decision.approver}")
            return OrderStatus.FAILED.value
        yield step("approval", "APPROVED", detail=f"by {decision.approver}")

    yield wf.when_all([ctx.call_activity("commit_stock", input=line, retry_policy=TECHNICAL_RETRY) for line in lines])
    yield step("complete", "COMPLETED", status=OrderStatus.COMPLETED)
    return OrderStatus.COMPLETED.value


def _release(ctx: wf.DaprWorkflowContext, lines: list[StockLine]):
    """Compensation: give back every reservation that was made, in reverse order."""
    for line in reversed(lines):
        yield ctx.call_activity("release_stock", input=line, retry_policy=TECHNICAL_RETRY)
