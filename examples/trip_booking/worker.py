"""Run the trip saga on a real Dapr sidecar: `python -m examples.trip_booking.worker` with
DAPR_GRPC_PORT pointing at a daprd 1.18 that runs with placement and scheduler (any app id), e.g.
the one of `dapr run --app-id trips -- python -m examples.trip_booking.worker`. It books one trip,
confirms it and prints how it ended."""

from __future__ import annotations

import time

from dapr.ext.workflow import DaprWorkflowClient, WorkflowRuntime

from examples.trip_booking import activities
from examples.trip_booking.models import Leg, Trip
from examples.trip_booking.saga import TRIP_SAGA, register_trips
from examples.trip_booking.services import Agency


def main() -> None:
    activities.agency = Agency()
    runtime = WorkflowRuntime()
    register_trips(runtime)
    runtime.start()
    try:
        trip = Trip(trip_id=f"trip-{int(time.time())}", traveller="ann", card="4242",
                    flight=Leg(trip_id="t", kind="flight", what="LH 123 FRA-LIS", price_cents=25_000),
                    hotel=Leg(trip_id="t", kind="hotel", what="Lisboa, 3 nights", price_cents=42_000))
        trip = trip.model_copy(update={"flight": trip.flight.model_copy(update={"trip_id": trip.trip_id}),
                                       "hotel": trip.hotel.model_copy(update={"trip_id": trip.trip_id})})
        client = DaprWorkflowClient()
        client.schedule_new_workflow(TRIP_SAGA.name, input=trip, instance_id=trip.trip_id)
        time.sleep(2)
        client.raise_workflow_event(trip.trip_id, "confirm", data={"by": trip.traveller})
        state = client.wait_for_workflow_completion(trip.trip_id, timeout_in_seconds=60)
        print(f"{trip.trip_id}: {state.runtime_status.name} {state.serialized_output}")
        for note in activities.timelines.get(trip.trip_id, []):
            print(f"  {note.step:<16} {note.outcome:<10} {note.detail}")
    finally:
        runtime.shutdown()


if __name__ == "__main__":
    main()
