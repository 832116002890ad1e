"""Replay a recorded workflow history through the workflow code registered now, without a
sidecar: the check Temporal's replayer makes, on the Dapr Python SDK's own orchestration
executor (the code that replays histories inside order-service).

The SDK has no public replayer, so this reaches its worker's registry and executor; both are
pinned with the SDK version (pyproject.toml).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dapr.ext.workflow import WorkflowRuntime
from dapr.ext.workflow._durabletask import worker as durabletask_worker
from dapr.ext.workflow._durabletask.internal import protos as pb
from google.protobuf.json_format import ParseDict

HISTORIES = Path(__file__).parent / "histories"

WHAT_TO_DO = (
    "The saga's code no longer replays a history recorded from a running saga: sagas in flight would "
    "fail or stall after this release. If you meant to change the steps, keep the old version and "
    "register the new shape as a new version in order_service/workflows.py, or guard a small change "
    "with ctx.is_patched(\"name\") (README, \"Changing the saga\"); then `make replay-record` records "
    "the new version's paths beside the old ones."
)


@dataclass
class Replay:
    recording: Path
    status: str  # COMPLETED, FAILED, ... as the replayed code would end the instance
    result: str | None
    expected_result: str | None
    failure: str  # the error type and message when the replay failed


def registry(register: Callable[[WorkflowRuntime], None]):
    """What `register` puts on a WorkflowRuntime, as the worker's registry (it never connects)."""
    runtime = WorkflowRuntime(host="127.0.0.1", port="1")
    register(runtime)
    return runtime._WorkflowRuntime__worker._registry


def recordings() -> list[Path]:
    return sorted(HISTORIES.glob("*/*/*.json"))


def replay(recording: Path, workflows_registry) -> Replay:
    data = json.loads(recording.read_text())
    events = [ParseDict(event, pb.HistoryEvent()) for event in data["events"]]
    completed = events[-1].executionCompleted if events[-1].HasField("executionCompleted") else None
    body = events[:-1] if completed else events
    # The runtime hands the worker the history so far and the events of the current turn (from
    # its last OrchestratorStarted): replaying the whole record ends with the last turn's actions.
    last_turn = max(i for i, event in enumerate(body) if event.HasField("workflowStarted"))
    executor = durabletask_worker._OrchestrationExecutor(workflows_registry, logging.getLogger("replay"))
    results = executor.execute(data["instance_id"], body[:last_turn], body[last_turn:])
    ending = next((a.completeWorkflow for a in results.actions if a.HasField("completeWorkflow")), None)
    version_missing = any(a.HasField("workflowVersionNotAvailable") for a in results.actions)
    if version_missing:
        return Replay(recording, "STALLED", None, _result(completed), f"version {data['version']} is not registered")
    if ending is None:
        return Replay(recording, "RUNNING", None, _result(completed), "the replay did not reach the recorded end")
    status = pb.OrchestrationStatus.Name(ending.workflowStatus).removeprefix("ORCHESTRATION_STATUS_")
    failure = ""
    if ending.HasField("failureDetails"):
        failure = f"{ending.failureDetails.errorType}: {ending.failureDetails.errorMessage}"
    return Replay(recording, status, _result(ending), _result(completed), failure)


def _result(message) -> str | None:
    return message.result.value if message is not None and message.HasField("result") else None
