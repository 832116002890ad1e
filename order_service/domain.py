"""The order, its statuses and its timeline: pure data and rules, no I/O.

Statuses and reasons are the external contract of DESIGN.md.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
MAX_LINES = 100


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    RESERVING = "RESERVING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    CHARGING = "CHARGING"
    SHIPPING = "SHIPPING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset(
    {OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.NEEDS_ATTENTION}
)


class FailureReason(StrEnum):
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    APPROVAL_TIMEOUT = "APPROVAL_TIMEOUT"
    SHIPPING_FAILED = "SHIPPING_FAILED"
    INVENTORY_UNAVAILABLE = "INVENTORY_UNAVAILABLE"
    PAYMENT_UNAVAILABLE = "PAYMENT_UNAVAILABLE"


class LineItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(pattern=ID_PATTERN)
    quantity: int = Field(gt=0, le=1_000_000)
    unit_price_cents: int = Field(gt=0, le=100_000_000_00)


class OrderRequest(BaseModel):
    """What a caller asks for. Validation failures name the offending field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(pattern=ID_PATTERN)
    customer_id: str = Field(pattern=ID_PATTERN)
    items: tuple[LineItem, ...] = Field(min_length=1, max_length=MAX_LINES)

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, items: tuple[LineItem, ...]) -> tuple[LineItem, ...]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear on one line only")
        return items

    @property
    def total_cents(self) -> int:
        return sum(item.quantity * item.unit_price_cents for item in self.items)


class TimelineEntry(BaseModel):
    at: str  # ISO-8601 UTC
    step: str
    outcome: str
    detail: str = ""
    key: str = ""  # idempotency key: a retried activity records its entry once


class PlannedCall(BaseModel):
    """A step's activity with its input, kept so that it can be run again."""

    step: str  # as the timeline names it: "undo ship", "commit"
    activity: str
    input: dict


class Ending(BaseModel):
    """How the saga meant to end the order."""

    status: OrderStatus
    reason: str = ""
    tracking_number: str = ""


class Unfinished(BaseModel):
    """What a saga that ended in NEEDS_ATTENTION could not do: the calls left, in order, the
    ending it would have reached after them, and the status the order has while a retry runs
    them. A retry (or a person, closing the order by hand) finishes from here."""

    calls: list[PlannedCall]
    ending: Ending
    resume_status: OrderStatus


class OrderState(BaseModel):
    """What OrderActor keeps: identity, status, reason, timeline, saga instance id."""

    request: OrderRequest
    status: OrderStatus = OrderStatus.PLACED
    reason: str = ""
    saga_instance_id: str = ""  # the workflow now in charge: the saga, or its latest retry
    tracking_number: str = ""
    cancel_requested: bool = False
    decision: str = ""  # the first approval decision received ("approve" or "reject")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    unfinished: Unfinished | None = None  # set while the order NEEDS_ATTENTION
    retries: int = 0  # RetryOrder calls accepted: each runs a workflow of its own
    # The W3C traceparent of the order's placing (`up --observe`): later calls about the order
    # (an approval, a cancel) join its trace. Empty when traces are off.
    trace_parent: str = ""

    @property
    def order_id(self) -> str:
        return self.request.order_id


# An approval decision is taken while the order is at or before the approval gate.
BEFORE_APPROVAL = frozenset({OrderStatus.PLACED, OrderStatus.RESERVING, OrderStatus.AWAITING_APPROVAL})

# Entering these statuses is refused once a cancel was accepted: the saga unwinds instead.
CANCELLABLE = frozenset(
    {OrderStatus.PLACED, OrderStatus.RESERVING, OrderStatus.AWAITING_APPROVAL, OrderStatus.CHARGING}
)


def saga_instance_id(order_id: str) -> str:
    """Derived from the order id, so a second PlaceOrder can never start a second saga unnoticed."""
    return f"order-saga-{order_id}"


def retry_instance_id(order_id: str, attempt: int) -> str:
    """The workflow of the order's `attempt`-th retry: one per accepted RetryOrder."""
    return f"{saga_instance_id(order_id)}-retry-{attempt}"


def describe(error: ValidationError, subject: str = "order") -> str:
    """The first problem of a validation error, naming the field: "items.0.quantity: ..."."""
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or subject}: {first['msg']}"
