"""Every recorded history replays, turn by turn, through the workflow code registered now, to the
same end: the same activities with the same inputs, the same timers, the same result. A change
to the saga that would break sagas in flight fails here, with what to do, before it ships. No
sidecar: dapr_saga.testing.replay runs the SDK's own executor.

Two sets of recordings: `histories/` from the real runtime (`make replay-record`: every saga
path and a retry, per version), and `harness/` saved from dapr_saga's harness by the saga's unit
tests (every path they take, faults included) from the code as it was before the saga was
rebuilt on the kit (`ORDERSAGA_RECORD_HARNESS_RUNS=tests/replay/harness pytest tests/unit/test_saga*.py`
records them again: only for a new version, beside the old ones).
"""

from __future__ import annotations

from pathlib import Path

import dapr.ext.workflow as wf
import pytest
from dapr_saga.testing import replay

from order_service import workflows
from order_service.messages import SagaInput

HERE = Path(__file__).parent
HISTORIES = HERE / "histories"
HARNESS = HERE / "harness"
SAGA_NAME = workflows.ORDER_SAGA.name

WHAT_TO_DO = (
    "The saga's code no longer replays a history recorded from a running saga: sagas in flight would "
    "fail or stall after this release. If you meant to change the steps, keep the old version and "
    "register the new shape as a new version in order_service/workflows.py, or guard a small change "
    "with ctx.is_patched(\"name\") (docs/changing-the-saga.md); then `make replay-record` records "
    "the new version's paths beside the old ones."
)


def recordings(folder: Path = HISTORIES) -> list[Path]:
    return sorted(folder.glob("*/*/*.json"))


def test_there_are_recordings_of_every_registered_version_and_every_path():
    recorded = {(p.parent.parent.name, p.parent.name) for p in recordings()}
    registered = {(w.name, v) for w in (workflows.ORDER_SAGA, workflows.RETRY_SAGA, workflows.DECIDED_SAGA,
                                        workflows.BULK_ACTION) for v, _ in w.versions}
    assert registered <= recorded, f"no recording for {sorted(registered - recorded)}: run `make replay-record`"
    every_path = {"completed", "approved", "rejected", "approval-timeout", "cancelled-at-approval", "out-of-stock",
                  "payment-declined", "shipping-failed", "needs-attention-then-retried"}
    for version, _ in workflows.ORDER_SAGA.versions:
        paths = {p.stem for p in recordings() if p.parent.parent.name == SAGA_NAME and p.parent.name == version}
        assert every_path <= paths, f"{SAGA_NAME} {version}: no recording of {sorted(every_path - paths)}"


@pytest.mark.parametrize("recording", recordings() + recordings(HARNESS),
                         ids=lambda p: f"{p.parent.parent.parent.name}/{p.parent.parent.name}/{p.parent.name}/{p.stem}")
def test_a_recorded_history_replays_to_the_same_end(recording):
    replayed = replay(recording, workflows.register)  # a harness recording made without patches replays so
    assert replayed.ok, f"{replayed.explain()}\n{WHAT_TO_DO}"


def test_a_changed_saga_registered_under_the_old_version_fails_the_check_with_what_to_do():
    """The check can fail: a v1 that commits the stock first does not replay v1's histories."""
    def reordered_saga(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
        order = SagaInput.model_validate(saga_input).order
        yield ctx.call_activity("commit_stock", input={"order_id": order.order_id, "lines": []})
        return "COMPLETED"

    def register_changed(runtime):
        runtime.register_versioned_workflow(reordered_saga, name=SAGA_NAME, version_name="v1", is_latest=True)

    (completed,) = [p for p in recordings() if p.parent.name == "v1" and p.stem == "completed"]
    replayed = replay(completed, register_changed)
    assert replayed.status == "FAILED" and not replayed.ok
    assert replayed.failure.startswith("NonDeterminismError") and "reserve_stock" in replayed.failure, replayed.failure


def test_a_saga_that_sends_other_inputs_fails_the_turn_by_turn_check():
    """The SDK compares activity names only; a step whose input changed is caught here."""
    def register_changed(runtime):
        def changed(ctx, saga_input):
            return (yield from workflows.ORDER_SAGA.versions[0][1](ctx, _with_other_timeout(saga_input)))
        runtime.register_versioned_workflow(changed, name=SAGA_NAME, version_name="v1", is_latest=True)
        for name, activity in workflows.ACTIVITIES.items():
            runtime.register_activity(activity, name=name)

    (completed,) = [p for p in recordings() if p.parent.name == "v1" and p.stem == "completed"]
    replayed = replay(completed, register_changed)
    assert not replayed.ok and replayed.departures, replayed.explain()
    assert "reserve_stock" in replayed.departures[0] and "deadline_s" in replayed.departures[0]


def _with_other_timeout(saga_input):
    return {**saga_input, "step_timeout_s": 7}


def test_a_history_of_a_version_no_longer_registered_stalls():
    def some_other_saga(ctx, saga_input):
        return (yield from workflows.ORDER_SAGA.versions[-1][1](ctx, saga_input))

    def register_v2_only(runtime):
        runtime.register_versioned_workflow(some_other_saga, name=SAGA_NAME, version_name="v2", is_latest=True)

    (completed,) = [p for p in recordings() if p.parent.name == "v1" and p.stem == "completed"]
    assert replay(completed, register_v2_only).status == "STALLED"
