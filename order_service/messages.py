"""The models that cross the workflow/activity boundary (serialized into workflow history).

Renaming a field here breaks replay of running sagas: add fields with defaults instead.
"""

from __future__ import annotations

from typing import Literal

from dapr_saga import Gate, StepResult  # noqa: F401 (re-exported: what steps answer, what the actor answers)
from pydantic import BaseModel, ConfigDict, Field

from order_service.domain import ID_PATTERN, LifecycleEvent, OrderRequest, Unfinished  # noqa: F401 (LifecycleEvent: re-exported)


class SagaInput(BaseModel):
    order: OrderRequest
    approval_threshold_cents: int
    approval_timeout_s: int
    step_timeout_s: int = 30


class StockLine(BaseModel):
    order_id: str
    sku: str
    quantity: int
    deadline_s: float = 30.0  # the step timeout, as the call's gRPC deadline

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:reserve-{self.sku}"


class StockBatch(BaseModel):
    """An order's lines at inventory: one activity, one call per line (made concurrently).
    One activity per service rather than per line keeps the workflow's round trips (the costly
    part of a step) independent of the order's width."""

    order_id: str
    lines: list[StockLine]

    def only(self, keep: list[bool]) -> "StockBatch":
        return StockBatch(order_id=self.order_id, lines=[line for line, k in zip(self.lines, keep) if k])


class StockLines(BaseModel):
    """An order's lines at inventory in one call and one state transaction (saga v2): reserved
    together or not at all, then released or committed together under the same key."""

    order_id: str
    lines: list[StockLine]
    deadline_s: float = 30.0
    enter: OrderUpdate | None = None  # a gate: the actor must accept this update first

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:reserve"

    def only(self, keep: list[bool]) -> "StockLines":
        """The lines to name on the timeline; a release or commit acts on every line held under
        the key, whatever it lists."""
        return self.model_copy(update={"lines": [line for line, k in zip(self.lines, keep) if k], "enter": None})


class PaymentCall(BaseModel):
    order_id: str
    customer_id: str
    amount_cents: int
    deadline_s: float = 30.0
    enter: OrderUpdate | None = None  # a gate: the actor must accept this update first

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:payment"


class ShipmentCall(BaseModel):
    order_id: str
    customer_id: str
    deadline_s: float = 30.0
    enter: OrderUpdate | None = None  # a gate: the actor must accept this update first

    @property
    def idempotency_key(self) -> str:
        return f"{self.order_id}:ship"


class StepRecord(BaseModel):
    """A timeline entry for the actor; `status`/`reason` move the order's status with it.

    Extra fields ride along only where a saga sets them, so histories recorded before they
    existed replay unchanged: `parks_until` (saga v3), with AWAITING_APPROVAL: the saga parks
    and the order waits until then."""

    model_config = ConfigDict(extra="allow")

    order_id: str
    step: str
    outcome: str
    detail: str = ""
    key: str = ""
    status: str = ""
    reason: str = ""
    tracking_number: str = ""


class OrderUpdate(BaseModel):
    """What one `update_order` activity does: append timeline entries on the actor (one turn,
    one state write; the last entry may move the status), then publish a lifecycle event
    unless the actor refused the status change."""

    order_id: str
    records: list[StepRecord]
    event: LifecycleEvent | None = None
    unfinished: Unfinished | None = None  # with a move to NEEDS_ATTENTION: what is left to do


class FinishCall(BaseModel):
    """The saga's last step and its ending in one activity (saga v2): commit the stock, then,
    only once that is done, record the order COMPLETED and publish `completed`."""

    commit: StockLines
    complete: OrderUpdate


class RetryInput(BaseModel):
    """The input of `order_saga_retry`: what the order's saga left unfinished, run again."""

    order: OrderRequest
    unfinished: Unfinished
    attempt: int  # 1 for the first retry: it keeps this retry's timeline entries apart
    retried_by: str = ""
    step_timeout_s: int = 30


class DecidedInput(BaseModel):
    """The input of `order_saga_decided`: a parked order's saga, and how its wait ended."""

    saga: SagaInput
    outcome: Literal["approve", "reject", "timeout", "cancel"]
    approver: str = ""


class ApprovalDecision(BaseModel):
    """The data of an approval CloudEvent on `order-approvals` (DESIGN.md)."""

    model_config = ConfigDict(extra="ignore")

    order_id: str = Field(pattern=ID_PATTERN)
    decision: Literal["approve", "reject"]
    approver: str = Field(default="", max_length=200)
    reason: str = Field(default="", max_length=1000)


class BulkInput(BaseModel):
    """The input of `ordersaga_bulk_action`: what to do to every order a filter selects."""

    bulk_id: str
    action: Literal["retry", "close", "cancel", "approve", "reject"]
    filter: dict  # order_service.queries.ListFilter's fields
    operator: str = ""
    note: str = ""
    rate_per_s: float = 20.0
    requested_at: str = ""
    chunk_size: int = 250


class BulkHead(BaseModel):
    """What the selection took: the orders are stored in `chunks` of the input's chunk size."""

    selected: int
    chunks: int
    left_alone: int = 0  # matched the filter, but the action does not apply to their status


class BulkChunk(BaseModel):
    job: BulkInput
    number: int


class BulkCounts(BaseModel):
    done: int = 0
    changed: int = 0
    skipped: int = 0
    failed: int = 0

    def plus(self, other: "BulkCounts") -> "BulkCounts":
        return BulkCounts(done=self.done + other.done, changed=self.changed + other.changed,
                          skipped=self.skipped + other.skipped, failed=self.failed + other.failed)


# The call models name OrderUpdate before it is defined.
StockLines.model_rebuild()
PaymentCall.model_rebuild()
ShipmentCall.model_rebuild()
