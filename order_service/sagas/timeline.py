"""The order's timeline as the saga writes it: the kit's notes, events and leftovers in the
messages the order's actor and order-events take (order_service/messages.py). Data shaping
only: the kit decides what is sent and when. Replayed code, like the versions that use it."""

from __future__ import annotations

import logging

from dapr_saga import Ending, Event, Leftover, Note, Timeline

from order_service.domain import OrderRequest, Unfinished
from order_service.messages import LifecycleEvent, OrderUpdate, StepRecord

UPDATE_ACTIVITY = "update_order"
log = logging.getLogger("order_service.saga")


class OrderTimeline(Timeline):
    def __init__(self, order: OrderRequest):
        super().__init__(order.order_id, UPDATE_ACTIVITY, label="order", logger=log)
        self.order = order

    def update(self, notes: list[Note], *, event: Event | None = None, leftover: Leftover | None = None) -> OrderUpdate:
        return OrderUpdate(order_id=self.entity_id, records=[self.record(note) for note in notes], event=event,
                           unfinished=Unfinished.model_validate(leftover.model_dump()) if leftover else None)

    def record(self, note: Note) -> StepRecord:
        return StepRecord(order_id=self.entity_id, **note.model_dump())

    def event(self, type: str, *, status: str, reason: str = "", detail: str = "") -> LifecycleEvent:
        return LifecycleEvent(order_id=self.entity_id, type=type, status=status, reason=reason, detail=detail,
                              total_cents=self.order.total_cents)

    def completion(self, ending: Ending) -> dict:
        """A completion names the tracking number (the timeline's detail, and the order's)."""
        tracking_number = getattr(ending, "tracking_number", "")
        return {"detail": tracking_number, "tracking_number": tracking_number}
