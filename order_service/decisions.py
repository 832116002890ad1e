"""The saga's business decisions as small pure functions (unit-tested without a sidecar)."""

from __future__ import annotations

from order_service.domain import FailureReason
from order_service.messages import StepResult


def needs_approval(total_cents: int, threshold_cents: int) -> bool:
    return total_cents >= threshold_cents


def reservation_failure(stock: StepResult, payment: StepResult) -> FailureReason | None:
    """Why the fan-out (the reservations, answered per line, and the payment hold) failed, if it did.

    A definite business answer wins over an unknown one: a shortage is reported as such even
    when another branch timed out.
    """
    stock = stock.parts or [stock]  # no parts: the whole batch failed technically
    if any(result.reason == FailureReason.OUT_OF_STOCK for result in stock):
        return FailureReason.OUT_OF_STOCK
    if payment.reason == FailureReason.PAYMENT_DECLINED:
        return FailureReason.PAYMENT_DECLINED
    if not all(result.ok for result in stock):
        return FailureReason.INVENTORY_UNAVAILABLE
    if not payment.ok:
        return FailureReason.PAYMENT_UNAVAILABLE
    return None


def batch_result(parts: list[StepResult]) -> StepResult:
    """One result for a batch of calls: ok if all were; unknown if any may have happened
    unnoticed; else the first definite no. The parts are kept for the timeline and the undo."""
    refusals = [part.reason for part in parts if not part.ok and not part.unknown]
    return StepResult(ok=all(part.ok for part in parts), unknown=any(part.unknown for part in parts),
                      reason=refusals[0] if refusals else "", parts=parts)


def must_undo(result: StepResult) -> bool:
    """A step is compensated when it succeeded or may have: a definite no left nothing to undo."""
    return result.ok or result.unknown


def approval_outcome(decision: str) -> str:
    return "APPROVED" if decision == "approve" else "REJECTED"
