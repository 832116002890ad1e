"""The second half of a parked order's saga, version 1: started by the order's actor once the
order's wait at the approval gate ends (order saga v3 parks there and ends its workflow).

How the wait ended decides the rest: approved, the order is charged, shipped, committed and
completed as v3 does it; rejected, timed out or cancelled, the reservation and the payment hold
(which the first half made) are undone and the order ends FAILED (APPROVAL_REJECTED,
APPROVAL_TIMEOUT) or CANCELLED. A cancel the actor accepted while it was still parked, or
before a step's gate, unwinds the saga as in every version. Frozen: change it only behind a
patch; a new version must take over what every parking version's first half leaves.
"""

from __future__ import annotations

import dapr.ext.workflow as wf
from dapr_saga import Saga

from order_service import decisions
from order_service.domain import FailureReason
from order_service.messages import DecidedInput
from order_service.sagas import v3
from order_service.sagas.timeline import OrderTimeline


def decided_saga(ctx: wf.DaprWorkflowContext, decided_input: DecidedInput):
    decided = DecidedInput.model_validate(decided_input)
    saga = Saga(ctx, v3.RULES, OrderTimeline(decided.saga.order))
    stock, payment = v3.calls(decided.saga)
    saga.carry_over([v3.RESERVE(stock), v3.AUTHORIZE(payment)])  # the first half's: undone if this unwinds

    if decided.outcome == "cancel":
        return (yield from saga.cancel())
    if decided.outcome == "timeout":
        saga.note("approval", "TIMED_OUT")
        return (yield from saga.fail(FailureReason.APPROVAL_TIMEOUT, cancel_wins=True))
    outcome = decisions.approval_outcome(decided.outcome)
    saga.note("approval", outcome, detail=f"by {decided.approver}".strip())
    if outcome != "APPROVED":
        return (yield from saga.fail(FailureReason.APPROVAL_REJECTED))
    return (yield from v3.charge_and_ship(saga, decided.saga, stock, payment))
