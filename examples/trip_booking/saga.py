"""The trip saga: replayed code (no I/O here; every side effect is an activity, activities.py).

1. Book the flight, the hotel and the car in parallel. Each answers within 30 s or counts as
   unknown (it may still land), so it is cancelled like a booking that went through.
2. Hold them, and wait up to a day for the traveller to confirm (or cancel).
3. Charge the card; a declined card unwinds the bookings.
Any failure cancels, in reverse, everything that was booked or may have been; a cancellation
that keeps failing leaves the trip NEEDS_ATTENTION with what is left (`trip_saga_retry` runs it
again once the cause is fixed).
"""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
from dapr_saga import Rules, Saga, Step, Timeline, Workflow, register, retry_workflow

from examples.trip_booking import activities
from examples.trip_booking.models import Trip

RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=4, backoff_coefficient=2.0)
RULES = Rules(step_retry=RETRY, update_retry=RETRY)
ANSWER_WITHIN = timedelta(seconds=30)

FLIGHT = Step("flight", do="book_flight", undo="cancel_flight", timeout=ANSWER_WITHIN)
HOTEL = Step("hotel", do="book_hotel", undo="cancel_hotel", timeout=ANSWER_WITHIN)
CAR = Step("car", do="rent_car", undo="return_car", timeout=ANSWER_WITHIN)
PAY = Step("pay", do="charge_card", undo="refund_card", fails_as="PAYMENT_DECLINED")
STEPS = {"flight": FLIGHT, "hotel": HOTEL, "car": CAR}


def trip_saga(ctx: wf.DaprWorkflowContext, trip: Trip):
    trip = Trip.model_validate(trip)
    saga = Saga(ctx, RULES, Timeline(trip.trip_id, "record_trip", label="trip"))

    booked = yield from saga.run_parallel([STEPS[leg.kind](leg) for leg in trip.legs])
    if not all(booking.ok for booking in booked):
        return (yield from saga.fail("NOT_BOOKED"))

    yield from saga.enter("HELD", "confirm", announce="trip_held")
    if (yield from saga.wait_for_event("confirm", timedelta(days=1), cancel_event="cancel")) is None:
        return (yield from saga.fail("NOT_CONFIRMED"))

    yield from saga.run(PAY(trip.payment()))
    return (yield from saga.complete(detail=", ".join(booking.detail for booking in booked)))


TRIP_SAGA = Workflow("trip_saga", [("v1", trip_saga)])
TRIP_RETRY = Workflow("trip_saga_retry", [("v1", retry_workflow(RULES, "record_trip", label="trip"))])


def register_trips(runtime) -> None:
    """What the worker (and the tests) register: the sagas' versions and the activities."""
    register(runtime, [TRIP_SAGA, TRIP_RETRY], activities.ACTIVITIES)
