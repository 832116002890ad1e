"""A test harness for Dapr workflows that needs no sidecar: in process, deterministic, on a
virtual clock, on the SDK's own executor (the code that replays histories inside an app).

    env = Harness(workflows.register, fakes={"book_flight": answers(OK), "book_hotel": fails(calls=1)})
    run = env.start("trip", trip, instance_id="trip-1")   # runs until it waits for time or an event
    run.raise_event("approval", {"ok": True})
    run.finish()                                          # skips time (a one-day timer takes ms)
    assert run.status == "COMPLETED" and run.activities() == [...]

`replay(recording, register)` replays a history recorded from a real runtime (or saved from a
run) through the code registered now, turn by turn, and says where it departs from it.
"""

from dapr_saga.testing.fakes import HANG, Attempt, Later, answers, current_call, fails, hangs, late, raises, sequence
from dapr_saga.testing.harness import START, ActivityCall, Harness, Run
from dapr_saga.testing.replay import Replay, load, replay

__all__ = ["HANG", "START", "ActivityCall", "Attempt", "Harness", "Later", "Replay", "Run", "answers",
           "current_call", "fails", "hangs", "late", "load", "raises", "replay", "sequence"]
