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
    # Not a business answer: the saga met a fault it cannot judge (a bug in a step, the order's
    # own record that could not be written), undid what it could and left the order to a person
    # (NEEDS_ATTENTION), who ends it FAILED with this reason (CloseOrder or RetryOrder).
    INTERNAL_ERROR = "INTERNAL_ERROR"


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


class LifecycleEvent(BaseModel):
    """One event on `order-events`; (order_id, type) is its stable CloudEvent id."""

    order_id: str
    type: str  # placed, approval_requested, completed, failed, cancelled, needs_attention, overdue
    status: str
    reason: str = ""
    detail: str = ""
    total_cents: int = 0


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
    placed_at: str = ""  # ISO-8601 UTC ("" on orders placed before it was kept: see `placed_time`)
    # The approval threshold the order's saga runs with, frozen at placing as the saga's input
    # freezes it: a release that changes the setting changes nothing for orders placed before.
    # None on orders placed before it was kept.
    approval_threshold_cents: int | None = None
    # What the order owes the world outside its state, kept with it, so that a stop between the
    # save and the call loses nothing: the actor pays it after each save, and its reminders pay
    # what is still owed (events to announce, its label in the orders index, the cancel event
    # its saga must get).
    owed_events: list[LifecycleEvent] = Field(default_factory=list)
    indexed_as: str = ""  # the orders index's row for it (order_service/index.py), as last written
    cancel_raised: bool = False  # the saga was told of the accepted cancel
    # When the order entered its status ("" on orders saved before it was kept: see `since`).
    status_since: str = ""
    saga_version: str = ""  # the version of the order saga it started ("" before it was kept)
    # A saga that parks (v3) ends its workflow at the approval gate: nothing waits in the engine.
    # The order keeps what the saga needs to go on: until when it waits, then how it goes on
    # (`continuation`: approve, reject, timeout or cancel), which starts the saga's second half.
    parked: bool = False
    approval_due: str = ""  # ISO-8601 UTC: when a parked order's wait for a decision ends
    continuation: str = ""
    decided_at: str = ""  # when the continuation (or, before the gate, the decision) was taken
    decided_by: str = ""  # who approved or rejected
    # The runtime status the workflow in charge ended with, once the order is terminal: its answer
    # then comes from the order alone ("" on orders that ended before it was kept).
    saga_final_status: str = ""

    @property
    def order_id(self) -> str:
        return self.request.order_id

    @property
    def placed_time(self) -> str:
        return self.placed_at or (self.timeline[0].at if self.timeline else "")

    @property
    def since(self) -> str:
        return self.status_since or self.placed_time

    @property
    def owes_continuation(self) -> bool:
        """A parked order whose decision (or timeout, or cancel) is known owes the start of its
        saga's second half."""
        return self.parked and bool(self.continuation)

    @property
    def owes_cancel(self) -> bool:
        return self.cancel_requested and not self.cancel_raised and not self.status.terminal

    @property
    def owes_anything(self) -> bool:
        return bool(self.owed_events) or self.indexed_as != self.index_row_json() or self.owes_cancel or \
            self.owes_continuation

    def index_row_json(self) -> str:
        """The order's row in the orders index (order_service/index.py), as it should read now."""
        from order_service.index import IndexRow  # the index's format lives with the index

        return IndexRow.of(self).to_json()

    def awaits_decision(self, current_threshold_cents: int) -> bool:
        """Whether an approval decision concerns this order: it is at or before the approval gate
        and its saga will ask for one (by the threshold frozen with it; an order placed before
        the threshold was kept is trusted to be waiting once it says so)."""
        if self.status not in BEFORE_APPROVAL:
            return False
        if self.approval_threshold_cents is None:
            return self.status == OrderStatus.AWAITING_APPROVAL or \
                self.request.total_cents >= current_threshold_cents
        return self.request.total_cents >= self.approval_threshold_cents


IN_FLIGHT_LABEL = "IN_FLIGHT"

# An approval decision is taken while the order is at or before the approval gate.
BEFORE_APPROVAL = frozenset({OrderStatus.PLACED, OrderStatus.RESERVING, OrderStatus.AWAITING_APPROVAL})

# Entering these statuses is refused once a cancel was accepted: the saga unwinds instead.
CANCELLABLE = frozenset(
    {OrderStatus.PLACED, OrderStatus.RESERVING, OrderStatus.AWAITING_APPROVAL, OrderStatus.CHARGING}
)


def saga_instance_id(order_id: str) -> str:
    """Derived from the order id, so a second PlaceOrder can never start a second saga unnoticed."""
    return f"order-saga-{order_id}"


def continuation_instance_id(order_id: str) -> str:
    """The workflow of a parked order's second half, started by its decision (one per order)."""
    return f"{saga_instance_id(order_id)}-decided"


def retry_instance_id(order_id: str, attempt: int) -> str:
    """The workflow of the order's `attempt`-th retry: one per accepted RetryOrder."""
    return f"{saga_instance_id(order_id)}-retry-{attempt}"


def describe(error: ValidationError, subject: str = "order") -> str:
    """The first problem of a validation error, naming the field: "items.0.quantity: ..."."""
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or subject}: {first['msg']}"
