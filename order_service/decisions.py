"""The saga's business decisions as small pure functions (unit-tested without a sidecar).

Replayed code: every saga version that calls them replays them; change one by adding another."""

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


def approval_outcome(decision: str) -> str:
    return "APPROVED" if decision == "approve" else "REJECTED"
