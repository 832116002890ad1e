"""The order saga, version 3 (the latest): version 2's business process, except that an order
waiting for approval waits on its actor, not in the workflow engine.

1. Reserve every line (one call: all or none; gated: the actor moves the order to RESERVING
   first, unless a cancel came first) and hold the payment, in parallel.
2. A large order parks: the saga records AWAITING_APPROVAL with the end of its wait and ends
   its workflow. Nothing waits in the engine (version 2 kept a workflow in the sidecar's memory
   and three durable timers per waiting order: docs/performance.md, "100,000 orders waiting").
   The order's actor takes the decision, or the timeout (its check-up is armed for the end of
   the wait), or a cancel, and starts the second half (decided_v1.py): the rest of this
   process, with the reservation and the hold to undo if it unwinds.
3. An order that needs no approval goes straight on: capture the payment, create the shipment
   (each gated), then commit the stock and record COMPLETED in one activity.
Any failure undoes, in reverse, every step that succeeded or may have. Frozen: change it only
behind a patch.
"""

from __future__ import annotations

from datetime import timedelta, timezone

import dapr.ext.workflow as wf
from dapr_saga import Ending, Leftover, Rules, Saga, SagaCancelled, Step

from order_service import decisions
from order_service.domain import FailureReason, OrderStatus
from order_service.messages import FinishCall, PaymentCall, SagaInput, ShipmentCall, StockLine, StockLines
from order_service.sagas.timeline import OrderTimeline

TECHNICAL_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=500), max_number_of_attempts=4,
                                 backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=5))
BOOKKEEPING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=12,
                                   backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=30))
ENDING_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=70,
                              backoff_coefficient=2.0, max_retry_interval=timedelta(seconds=60))
RULES = Rules(step_retry=TECHNICAL_RETRY, update_retry=BOOKKEEPING_RETRY, ending_retry=ENDING_RETRY,
              technical_errors=frozenset({"ServiceUnavailable", "OrderNotUpdated", "AioRpcError",
                                          "_InactiveRpcError", "RpcError"}))

RESERVE = Step("reserve", "reserve_lines", undo="release_lines", gate=OrderStatus.RESERVING)
AUTHORIZE = Step("authorize", "authorize_payment", undo="void_payment")
CAPTURE = Step("capture", "capture_payment", undo="refund_payment", gate=OrderStatus.CHARGING,
               fails_as=FailureReason.PAYMENT_UNAVAILABLE)
SHIP = Step("ship", "create_shipment", undo="cancel_shipment", gate=OrderStatus.SHIPPING,
            fails_as=FailureReason.SHIPPING_FAILED)
FINISH = Step("commit", "finish_order", retry=BOOKKEEPING_RETRY)  # the commit, and the completion with it
COMMIT = Step("commit", "commit_lines")  # what a retry runs when FINISH keeps failing
PARKED = "AWAITING_APPROVAL"  # what the first half returns when it parks


def calls(saga_input: SagaInput) -> tuple[StockLines, PaymentCall]:
    """The reservation's and the hold's inputs: the second half undoes them with the same keys."""
    order, deadline_s = saga_input.order, saga_input.step_timeout_s
    stock = StockLines(order_id=order.order_id, deadline_s=deadline_s, lines=[
        StockLine(order_id=order.order_id, sku=i.sku, quantity=i.quantity, deadline_s=deadline_s) for i in order.items])
    payment = PaymentCall(order_id=order.order_id, customer_id=order.customer_id, amount_cents=order.total_cents,
                          deadline_s=deadline_s)
    return stock, payment


def order_saga_v3(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
    saga_input = SagaInput.model_validate(saga_input)
    order = saga_input.order
    saga = Saga(ctx, RULES, OrderTimeline(order))
    stock, payment = calls(saga_input)

    # 1. Reserve the lines and hold the payment, in parallel.
    reserved, held = yield from saga.run_parallel([RESERVE(stock), AUTHORIZE(payment)])
    if failure := decisions.reservation_failure(reserved, held):
        return (yield from saga.fail(failure))

    # 2. The approval gate: park (a cancel accepted first unwinds the saga here).
    if decisions.needs_approval(order.total_cents, saga_input.approval_threshold_cents):
        return (yield from park(ctx, saga, saga_input))

    # 3. Charge and ship; once the goods are on their way, commit the stock and complete in one step.
    return (yield from charge_and_ship(saga, saga_input, stock, payment))


def park(ctx: wf.DaprWorkflowContext, saga: Saga, saga_input: SagaInput):
    """Record AWAITING_APPROVAL with the end of the wait, announce approval_requested, and end."""
    started = ctx.current_utc_datetime
    started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
    until = started + timedelta(seconds=saga_input.approval_timeout_s)
    saga.note("approval", "STARTED", status=OrderStatus.AWAITING_APPROVAL,
              parks_until=until.isoformat(timespec="milliseconds"))
    gate = yield from saga.update("approval_requested", status=OrderStatus.AWAITING_APPROVAL)
    if gate.cancel_requested:
        raise SagaCancelled(saga)
    return PARKED


def charge_and_ship(saga: Saga, saga_input: SagaInput, stock: StockLines, payment: PaymentCall):
    """Capture, ship, then commit and complete: the end of the saga, with or without a wait."""
    order, deadline_s = saga_input.order, saga_input.step_timeout_s
    yield from saga.run(CAPTURE(payment))
    shipped = yield from saga.run(SHIP(ShipmentCall(order_id=order.order_id, customer_id=order.customer_id,
                                                    deadline_s=deadline_s)))
    saga.note("commit", "DONE", detail=", ".join(line.sku for line in stock.lines))
    left = Leftover(calls=[COMMIT(stock).planned()], resume_status=OrderStatus.SHIPPING,
                    ending=Ending(status=OrderStatus.COMPLETED, tracking_number=shipped.detail))
    return (yield from saga.complete_with(FINISH, lambda completion: FinishCall(commit=stock, complete=completion),
                                          detail=shipped.detail, tracking_number=shipped.detail, leftover=left,
                                          left_detail="stock commit failed after the shipment was created"))
