"""Every recorded history (tests/replay/histories, from the real runtime: `make replay-record`)
replays through the workflow code registered now, to the same end. A change to the saga that
would break sagas in flight fails here, with what to do, before it ships. No sidecar."""

from __future__ import annotations

import json

import dapr.ext.workflow as wf
import pytest

from order_service import workflows
from order_service.messages import SagaInput
from order_service.saga import SAGA_NAME
from tests.replay.replayer import WHAT_TO_DO, recordings, registry, replay

REGISTRY = registry(workflows.register)


def test_there_are_recordings_of_every_registered_version_and_every_path():
    recorded = {(p.parent.parent.name, p.parent.name) for p in recordings()}
    registered = {(SAGA_NAME, v) for v, _ in workflows.SAGA_VERSIONS} | {
        ("order_saga_retry", v) for v, _ in workflows.RETRY_VERSIONS}
    assert registered <= recorded, f"no recording for {sorted(registered - recorded)}: run `make replay-record`"
    paths = {p.stem for p in recordings() if p.parent.parent.name == SAGA_NAME}
    assert {"completed", "approved", "rejected", "approval-timeout", "cancelled-at-approval", "out-of-stock",
            "payment-declined", "shipping-failed", "needs-attention-then-retried"} <= paths


@pytest.mark.parametrize("recording", recordings(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}")
def test_a_recorded_history_replays_to_the_same_end(recording):
    replayed = replay(recording, REGISTRY)
    assert replayed.status == "COMPLETED" and not replayed.failure, (
        f"{recording.name}: the replay ended {replayed.status}: {replayed.failure}\n{WHAT_TO_DO}")
    assert json.loads(replayed.result) == json.loads(replayed.expected_result), (
        f"{recording.name}: the replay returns {replayed.result}, the recording {replayed.expected_result}\n"
        f"{WHAT_TO_DO}")


def test_a_changed_saga_registered_under_the_old_version_fails_the_check_with_what_to_do():
    """The check can fail: a v1 that commits the stock first does not replay v1's histories."""
    def reordered_saga(ctx: wf.DaprWorkflowContext, saga_input: SagaInput):
        order = SagaInput.model_validate(saga_input).order
        yield ctx.call_activity("commit_stock", input={"order_id": order.order_id, "lines": []})
        return "COMPLETED"

    def register_changed(runtime):
        runtime.register_versioned_workflow(reordered_saga, name=SAGA_NAME, version_name="v1", is_latest=True)

    (completed,) = [p for p in recordings() if p.parent.name == "v1" and p.stem == "completed"]
    replayed = replay(completed, registry(register_changed))
    assert replayed.status == "FAILED"
    assert replayed.failure.startswith("NonDeterminismError") and "reserve_stock" in replayed.failure, replayed.failure


def test_a_history_of_a_version_no_longer_registered_stalls():
    def some_other_saga(ctx, saga_input):  # the SDK registers a function object once per process
        return (yield from workflows.SAGA_VERSIONS[-1][1](ctx, saga_input))

    def register_v2_only(runtime):
        runtime.register_versioned_workflow(some_other_saga, name=SAGA_NAME, version_name="v2", is_latest=True)

    (completed,) = [p for p in recordings() if p.parent.name == "v1" and p.stem == "completed"]
    assert replay(completed, registry(register_v2_only)).status == "STALLED"
