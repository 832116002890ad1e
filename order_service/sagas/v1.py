"""The order saga, version 1 (still registered for the sagas started on it; v2 is the latest).

1. Announce the order; reserve stock for every line and hold the payment, in parallel.
2. Large orders wait for an approval decision (or its timeout).
3. Capture the payment, create the shipment (each gated by the order's actor: a cancel it took
   first unwinds the saga), commit the stock, record COMPLETED.
Any failure undoes, in reverse, every step that succeeded or may have; an undo that keeps
failing ends the order NEEDS_ATTENTION with what is left. Frozen: change it only behind a patch.
"""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
from dapr_saga import Ending, Rules, Saga, Step

from order_service import decisions
from order_service.domain import FailureReason, OrderStatus
from order_service.messages import ApprovalDecision, PaymentCall, SagaInput, ShipmentCall, StockBatch, StockLine
from order_service.sagas import APPROVAL_EVENT, CANCEL_EVENT
from order_service.sagas.timeline import OrderTimeline

# Technical failures (a service or sidecar briefly away) are retried with exponential backoff;
# business answers come back as results and are never retried.
TECHNICAL_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=500), max_number_of_attempts=4,
                                 backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=5))
# Bookkeeping (the order's timeline, its events) must outlast a sidecar or broker restart.
BOOKKEEPING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=12,
                                   backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=30))
# The ending outlasts that (about an hour), then stays as the saga's custom status for the
# order's check-up to record.
ENDING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=70,
                              backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=60))
# Patches (sagas that met these places before the release replay without them): a fault stops
# the saga (it undoes and leaves the order to a person); the ending is retried for longer; a
# cancel accepted before the approval timed out ends the order CANCELLED.
FAULTS_PATCH = "faults-stop-the-saga"
ENDING_PATCH = "ending-retried-longer"
CANCEL_BEATS_TIMEOUT_PATCH = "cancel-beats-approval-timeout"
RULES = Rules(step_retry=TECHNICAL_RETRY, update_retry=BOOKKEEPING_RETRY, ending_retry=ENDING_RETRY,
              technical_errors=frozenset({"ServiceUnavailable", "OrderNotUpdated", "AioRpcError",
                                          "_InactiveRpcError", "RpcError"}),
              faults_patch=FAULTS_PATCH, ending_patch=ENDING_PATCH)

RESERVE = Step("reserve", "reserve_stock", undo="release_stock")  # per line: only what needs it is released
AUTHORIZE = Step("authorize", "authorize_payment", undo="void_payment")
CAPTURE = Step("capture", "capture_payment", undo="refund_payment", gate=OrderStatus.CHARGING,
               fails_as=FailureReason.PAYMENT_UNAVAILABLE)
SHIP = Step("ship", "create_shipment", undo="cancel_shipment", gate=OrderStatus.SHIPPING,
            fails_as=FailureReason.SHIPPING_FAILED)
COMMIT = Step("commit", "commit_stock")


def order_saga(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
    saga_input = SagaInput.model_validate(saga_input)
    order, deadline_s = saga_input.order, saga_input.step_timeout_s
    saga = Saga(ctx, RULES, OrderTimeline(order))
    stock = StockBatch(order_id=order.order_id, lines=[
        StockLine(order_id=order.order_id, sku=i.sku, quantity=i.quantity, deadline_s=deadline_s) for i in order.items])
    payment = PaymentCall(order_id=order.order_id, customer_id=order.customer_id, amount_cents=order.total_cents,
                          deadline_s=deadline_s)

    # 1. Announce the order; reserve every line and hold the payment, all in parallel.
    saga.note("reserve", "STARTED", status=OrderStatus.RESERVING)
    reserved, held = yield from saga.run_parallel([RESERVE(stock), AUTHORIZE(payment)], announce="placed")
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

    # 3. Charge, ship, commit.
    yield from saga.run(CAPTURE(payment))
    shipped = yield from saga.run(SHIP(ShipmentCall(order_id=order.order_id, customer_id=order.customer_id,
                                                    deadline_s=deadline_s)))
    committed = yield from saga.run(COMMIT(stock))
    if not committed.ok:  # the goods are on their way: nothing to undo, the commit is left to do
        return (yield from saga.leave("stock commit failed after the shipment was created", [COMMIT(stock)],
                                      Ending(status=OrderStatus.COMPLETED, tracking_number=shipped.detail),
                                      resume_status=OrderStatus.SHIPPING))
    return (yield from saga.complete(detail=shipped.detail, tracking_number=shipped.detail))
