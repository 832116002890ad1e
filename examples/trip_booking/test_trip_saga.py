"""The trip saga on dapr_saga's harness: its real activities over an in-memory agency, or fakes
for a service that fails, answers late or never. No sidecar; a day's wait takes milliseconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dapr_saga import RetryRequest, ServiceUnavailable, StepResult
from dapr_saga.testing import Harness, fails, late, replay

from examples.trip_booking import activities
from examples.trip_booking.models import Leg, Trip
from examples.trip_booking.saga import register_trips
from examples.trip_booking.services import Agency


def trip(car: bool = True) -> Trip:
    def leg(kind, what, price):
        return Leg(trip_id="t-1", kind=kind, what=what, price_cents=price)
    return Trip(trip_id="t-1", traveller="ann", card="4242", flight=leg("flight", "LH 123 FRA-LIS", 25_000),
                hotel=leg("hotel", "Lisboa, 3 nights", 42_000),
                car=leg("car", "compact, 3 days", 9_000) if car else None)


@pytest.fixture(autouse=True)
def agency() -> Agency:
    activities.agency, activities.timelines = Agency(), {}
    return activities.agency


def book(fakes=None, *, confirm=True, **start):
    run = Harness(register_trips, fakes).start("trip_saga", trip(**start), instance_id="t-1")
    if confirm:
        run.raise_event("confirm", {"by": "ann"})
    return run.finish()


def steps(run) -> list[tuple[str, str]]:
    return [(note.step, note.outcome) for note in activities.timelines["t-1"]]


def test_a_confirmed_trip_is_booked_and_paid(agency):
    run = book()
    assert run.result == "COMPLETED"
    assert sorted(agency.booked) == ["t-1:car", "t-1:flight", "t-1:hotel"] and agency.charged == {"t-1:pay": 76_000}
    assert ("confirm", "STARTED") in steps(run) and steps(run)[-1] == ("complete", "COMPLETED")


def test_a_sold_out_hotel_cancels_the_flight_and_the_car_in_reverse(agency):
    agency.refuse.add("hotel")
    run = book()
    assert run.result == "FAILED"
    assert run.activities()[-3:] == ["return_car", "cancel_flight", "record_trip"]  # the hotel said no: nothing to undo
    assert agency.booked == {} and agency.charged == {}


def test_a_trip_not_confirmed_within_a_day_is_unwound(agency):
    run = book(confirm=False)
    assert run.result == "FAILED" and run.now - run.harness.start_time == timedelta(days=1)
    assert agency.booked == {}


def test_a_traveller_who_cancels_gets_everything_cancelled(agency):
    run = Harness(register_trips).start("trip_saga", trip(), instance_id="t-1")
    run.advance(timedelta(hours=5)).raise_event("cancel", {"by": "ann"}).finish()
    assert run.result == "CANCELLED" and agency.booked == {}


def test_a_declined_card_unwinds_the_bookings(agency):
    agency.refuse.add("card")
    run = book()
    assert run.result == "FAILED"
    assert [s for s in steps(run) if s[0] == "finish"] == [("finish", "FAILED")]
    assert agency.booked == {} and agency.charged == {}


def test_an_airline_that_answers_after_the_step_timeout_counts_as_unknown_so_the_flight_is_cancelled(agency):
    run = book({"book_flight": late(timedelta(minutes=2), StepResult.done("LH-LATE"))})
    assert run.result == "FAILED"
    assert ("flight", "UNKNOWN") in steps(run) and "cancel_flight" in run.activities()


def test_an_airline_that_is_away_twice_is_retried(agency):
    run = book({"book_flight": fails(attempts=2, error=ServiceUnavailable("airline away"),
                                     then=lambda leg: activities.book(None, leg))})
    assert run.result == "COMPLETED" and run.called("book_flight")[0].attempts == 3


def test_a_cancellation_that_keeps_failing_is_left_for_a_retry_which_finishes_it(agency):
    agency.refuse.add("card")
    hotel_away = fails(calls=1, error=ServiceUnavailable("hotel away"), then=lambda leg: activities.cancel(None, leg))
    run = book({"cancel_hotel": hotel_away})
    assert run.result == "NEEDS_ATTENTION" and "t-1:hotel" in agency.booked
    left = run.called("record_trip")[-1].input.leftover
    assert [c.activity for c in left.calls] == ["cancel_hotel"] and left.ending.reason == "PAYMENT_DECLINED"

    again = Harness(register_trips).run("trip_saga_retry", RetryRequest(entity_id="t-1", leftover=left),
                                        instance_id="t-1-retry-1")
    assert again.result == "FAILED" and agency.booked == {}


def test_a_saved_run_replays_through_the_code(tmp_path):
    saved = book().save(tmp_path / "confirmed.json")
    assert replay(saved, register_trips).ok
