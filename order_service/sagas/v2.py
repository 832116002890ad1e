"""The order saga, version 2 (the latest): the business process of version 1 in 5 activities
instead of 7 (every activity costs the engine two scheduler jobs, a replay and several fsync'd
commits: docs/performance.md).

1. Reserve every line (one call to inventory: all or none; gated: the actor moves the order to
   RESERVING first, unless a cancel came first) and hold the payment, in parallel. The actor
   announced the order when it started this saga.
2. Large orders wait for an approval decision (or its timeout).
3. Capture the payment, create the shipment (each gated), then commit the stock and record
   COMPLETED in one activity (nothing is undone once the goods are on their way).
Any failure undoes, in reverse, every step that succeeded or may have. Frozen: change it only
behind a patch.
"""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
from dapr_saga import Ending, Leftover, Rules, Saga, Step

from order_service import decisions
from order_service.domain import FailureReason, OrderStatus
from order_service.messages import (
    ApprovalDecision,
    FinishCall,
    PaymentCall,
    SagaInput,
    ShipmentCall,
    StockLine,
    StockLines,
)
from order_service.sagas import APPROVAL_EVENT, CANCEL_EVENT
from order_service.sagas.timeline import OrderTimeline

TECHNICAL_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=500), max_number_of_attempts=4,
                                 backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=5))
BOOKKEEPING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=12,
                                   backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=30))
ENDING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=70,
                              backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=60))
FAULTS_PATCH = "faults-stop-the-saga"
ENDING_PATCH = "ending-retried-longer"
CANCEL_BEATS_TIMEOUT_PATCH = "cancel-beats-approval-timeout"
RULES = Rules(step_retry=TECHNICAL_RETRY, update_retry=BOOKKEEPING_RETRY, ending_retry=ENDING_RETRY,
              technical_errors=frozenset({"ServiceUnavailable", "OrderNotUpdated", "AioRpcError",
                                          "_InactiveRpcError", "RpcError"}),
              faults_patch=FAULTS_PATCH, ending_patch=ENDING_PATCH)

RESERVE = Step("reserve", "reserve_lines", undo="release_lines", gate=OrderStatus.RESERVING)
AUTHORIZE = Step("authorize", "authorize_payment", undo="void_payment")
CAPTURE = Step("capture", "capture_payment", undo="refund_payment", gate=OrderStatus.CHARGING,
               fails_as=FailureReason.PAYMENT_UNAVAILABLE)
SHIP = Step("ship", "create_shipment", undo="cancel_shipment", gate=OrderStatus.SHIPPING,
            fails_as=FailureReason.SHIPPING_FAILED)
FINISH = Step("commit", "finish_order", retry=BOOKKEEPING_RETRY)  # the commit, and the completion with it
COMMIT = Step("commit", "commit_lines")  # what a retry runs when FINISH keeps failing


def order_saga_v2(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
    saga_input = SagaInput.model_validate(saga_input)
    order, deadline_s = saga_input.order, saga_input.step_timeout_s
    saga = Saga(ctx, RULES, OrderTimeline(order))
    stock = StockLines(order_id=order.order_id, deadline_s=deadline_s, lines=[
        StockLine(order_id=order.order_id, sku=i.sku, quantity=i.quantity, deadline_s=deadline_s) for i in order.items])
    payment = PaymentCall(order_id=order.order_id, customer_id=order.customer_id, amount_cents=order.total_cents,
                          deadline_s=deadline_s)

    # 1. Reserve the lines and hold the payment, in parallel.
    reserved, held = yield from saga.run_parallel([RESERVE(stock), AUTHORIZE(payment)])
    if failure := decisions.reservation_failure(reserved, held):
        return (yield from saga.fail(failure))

    # 2. The approval gate (a cancel while it waits unwinds the saga).
    if decisions.needs_approval(order.total_cents, saga_input.approval_threshold_cents):
        yield from saga.enter(OrderStatus.AWAITING_APPROVAL, "approval", announce="approval_requested")
        decision = yield from saga.wait_for_event(APPROVAL_EVENT, timedelta(seconds=saga_input.approval_timeout_s),
                                                  cancel_event=CANCEL_EVENT)
        if decision is None:
            saga.note("approval", "TIMED_OUT")
            return (yield from saga.fail(FailureReason.APPROVAL_TIMEOUT, cancel_wins=CANCEL_BEATS_TIMEOUT_PATCH))
        approval = ApprovalDecision.model_validate(decision)
        outcome = decisions.approval_outcome(approval.decision)
        saga.note("approval", outcome, detail=f"by {approval.approver}".strip())
        if outcome != "APPROVED":
            return (yield from saga.fail(FailureReason.APPROVAL_REJECTED))

    # 3. Charge and ship; once the goods are on their way, commit the stock and complete in one step.
    yield from saga.run(CAPTURE(payment))
    shipped = yield from saga.run(SHIP(ShipmentCall(order_id=order.order_id, customer_id=order.customer_id,
                                                    deadline_s=deadline_s)))
    saga.note("commit", "DONE", detail=", ".join(line.sku for line in stock.lines))
    left = Leftover(calls=[COMMIT(stock).planned()], resume_status=OrderStatus.SHIPPING,
                    ending=Ending(status=OrderStatus.COMPLETED, tracking_number=shipped.detail))
    return (yield from saga.complete_with(FINISH, lambda completion: FinishCall(commit=stock, complete=completion),
                                          detail=shipped.detail, tracking_number=shipped.detail, leftover=left,
                                          left_detail="stock commit failed after the shipment was created"))
