"""The trip saga's activities: each one side effect, a thin adapter around one service call with
the booking's idempotency key. A definite no is a result (`StepResult.no`), never an exception;
a service that is away raises ServiceUnavailable, which the saga's retry policy retries."""

from __future__ import annotations

from dapr.ext.workflow import WorkflowActivityContext
from dapr_saga import Gate, StepResult, Update

from examples.trip_booking.models import Leg, Payment
from examples.trip_booking.services import Agency

agency = Agency()  # the composition root (worker.py) or a test puts the real one here
timelines: dict[str, list] = {}  # trip id -> its timeline (a real app keeps it with the trip)


def book(ctx: WorkflowActivityContext, leg: Leg) -> StepResult:
    confirmation = agency.book(leg.key, leg.kind, leg.what)
    return StepResult.done(confirmation) if confirmation else StepResult.no("SOLD_OUT")


def cancel(ctx: WorkflowActivityContext, leg: Leg) -> StepResult:
    agency.cancel(leg.key)
    return StepResult.done()


def charge_card(ctx: WorkflowActivityContext, payment: Payment) -> StepResult:
    return StepResult.done() if agency.charge(payment.key, payment.amount_cents) else StepResult.no("DECLINED")


def refund_card(ctx: WorkflowActivityContext, payment: Payment) -> StepResult:
    agency.refund(payment.key)
    return StepResult.done()


def record_trip(ctx: WorkflowActivityContext, update: Update) -> Gate:
    """The trip's timeline: each note once per key (an activity runs at least once)."""
    timeline = timelines.setdefault(update.entity_id, [])
    timeline.extend(note for note in update.notes if note.key not in {n.key for n in timeline})
    return Gate()


# Registered under these names: renaming a function never breaks a replay.
ACTIVITIES = {"book_flight": book, "cancel_flight": cancel, "book_hotel": book, "cancel_hotel": cancel,
              "rent_car": book, "return_car": cancel, "charge_card": charge_card, "refund_card": refund_card,
              "record_trip": record_trip}
