"""The models that cross the workflow/activity boundary (serialized into workflow history).

Renaming a field here breaks replay of running sagas: add fields with defaults instead.
"""

from __future__ import annotations

from pydantic import BaseModel

from order_service.domain import OrderRequest


class SagaInput(BaseModel):
    order: OrderRequest
    approval_threshold_cents: int
    approval_timeout_s: int


class StockLine(BaseModel):
    order_id: str
    sku: str
    quantity: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:reserve-{self.sku}"


class StockResult(BaseModel):
    ok: bool
    reason: str = ""


class StepRecord(BaseModel):
    """A timeline entry for the actor; `status`/`reason` move the order's status with it."""

    order_id: str
    step: str
    outcome: str
    detail: str = ""
    key: str = ""
    status: str = ""
    reason: str = ""


class ApprovalDecision(BaseModel):
    """The data of an approval CloudEvent on `order-approvals` (DESIGN.md)."""

    order_id: str
    decision: str  # "approve" | "reject"
    approver: str = ""
    reason: str = ""
