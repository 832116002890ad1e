"""Replay a recorded workflow history through the code registered now: Temporal's Replayer for
Dapr, on the SDK's own executor. A change that would break the instances in flight (they replay
their history through the new code on their next step) fails here, before it ships.

Two checks. The end: the whole history replayed as the last turn sees it must end the way the
recording did (status and result). Every turn: for each turn of the recording (the events the
engine handed the worker at once), the code must answer with the very actions the engine then
recorded: the same activities under the same names with the same inputs (compared as JSON), the
same timers at the same times, the same ending. The SDK itself only compares activity names at
their positions; the inputs are what a saga in flight would send next, so they are compared too.

A recording is a JSON file `{"workflow", "version", "instance_id", "events": [...]}`, the events
as protobuf JSON (what a sidecar's workflow API gives, or `Run.save`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from google.protobuf.json_format import ParseDict

from dapr_saga.testing import _sdk
from dapr_saga.testing._sdk import pb
from dapr_saga.testing.harness import _Registrar

# Events the engine hands the worker (a turn's inputs); the others record the worker's actions.
_INPUTS = {"workflowStarted", "executionStarted", "taskCompleted", "taskFailed", "timerFired", "eventRaised",
           "executionTerminated", "executionSuspended", "executionResumed", "childWorkflowInstanceCompleted",
           "childWorkflowInstanceFailed", "executionStalled"}
_log = logging.getLogger("dapr_saga.testing.replay")
_log.setLevel(logging.WARNING)


@dataclass
class Replay:
    name: str
    status: str  # how the replayed code ends the instance: COMPLETED, FAILED, RUNNING, STALLED
    result: str | None
    expected_status: str
    expected_result: str | None
    failure: str = ""  # the error type and message when the replayed code failed
    expected_failure: str = ""  # ... and when the recorded run failed
    departures: list[str] = field(default_factory=list)  # turns where the code acts otherwise
    patches: list[str] = field(default_factory=list)  # the patches the code asks for, at the end
    # A turn where the code takes a patch the recording did not have: from there on a saga in
    # flight runs the new branch, as intended, and later turns are not compared.
    takes_patch: str = ""

    @property
    def same_end(self) -> bool:
        return self.status == self.expected_status and _json(self.result) == _json(self.expected_result) and \
            self.failure.split(":")[0] == self.expected_failure.split(":")[0]

    @property
    def ok(self) -> bool:
        return self.same_end and not self.departures

    def explain(self) -> str:
        lines = [f"{self.name}: the replay ends {self.status}{f' ({self.failure})' if self.failure else ''} "
                 f"returning {self.result}; the recording ends {self.expected_status} returning "
                 f"{self.expected_result}"]
        return "\n".join(lines + [f"  {departure}" for departure in self.departures[:5]])


def load(recording: Path | dict) -> dict:
    """A recording, its events parsed."""
    data = json.loads(Path(recording).read_text()) if not isinstance(recording, dict) else dict(recording)
    data["events"] = [event if isinstance(event, pb.HistoryEvent) else ParseDict(event, pb.HistoryEvent())
                      for event in data["events"]]
    return data


def registry(register: Callable[[Any], None], without_patches=()):
    """What `register(runtime)` registers, as the worker's registry (it never connects).
    `without_patches`: as for a harness run, the code before those patches."""
    runtime = _sdk.new_runtime()
    register(_Registrar(runtime, _NoHarness(frozenset(without_patches))))
    return _sdk.registry_of(runtime)


def replay(recording: Path | dict, register_or_registry, *, inputs: bool = True) -> Replay:
    """Replay `recording` through what `register` registers (or a registry from `registry`).
    `inputs=False` compares activity names and timers only, as the SDK does. A recording saved
    from a harness run made `without_patches` is replayed without them."""
    data = load(recording)
    reg = register_or_registry if hasattr(register_or_registry, "activities") else \
        registry(register_or_registry, data.get("without_patches", ()))
    events = data["events"]
    name = str(data.get("path") or data.get("name") or data.get("instance_id", "recording"))
    recorded_end = events[-1].executionCompleted if events[-1].HasField("executionCompleted") else None
    expected_status = _status(recorded_end.workflowStatus) if recorded_end else "RUNNING"
    expected_result = recorded_end.result.value if recorded_end and recorded_end.HasField("result") else None
    expected_failure = ""
    if recorded_end and recorded_end.HasField("failureDetails"):
        expected_failure = f"{recorded_end.failureDetails.errorType}: {recorded_end.failureDetails.errorMessage}"

    turns = _turns(events)
    departures, takes_patch = [], ""
    for number, (start, inputs_end, end) in enumerate(turns, start=1):
        results = _sdk.executor(reg, _log).execute(data["instance_id"], events[:start], events[start:inputs_end])
        got = [_action(a, inputs) for a in results.actions]
        want = [_recorded(e, inputs) for e in events[inputs_end:end] if _recorded(e, inputs) is not None]
        if got != want:
            new = sorted(set(results.patches or []) - set(events[start].workflowStarted.version.patches))
            if new:
                takes_patch = f"turn {number}: {', '.join(new)}"
                break
            departures.append(f"turn {number} (after {_summary(events[start:inputs_end])}): the code "
                              f"{_describe(got)}, the recording {_describe(want)}")
    last_start = turns[-1][0] if turns else 0
    body = events[:-1] if recorded_end else events
    results = _sdk.executor(reg, _log).execute(data["instance_id"], body[:last_start], body[last_start:])
    status, result, failure = "RUNNING", None, ""
    for action in results.actions:
        if action.HasField("workflowVersionNotAvailable"):
            status, failure = "STALLED", f"version {data.get('version') or '?'} is not registered"
        elif action.HasField("completeWorkflow"):
            end = action.completeWorkflow
            status = _status(end.workflowStatus)
            result = end.result.value if end.HasField("result") else None
            if end.HasField("failureDetails"):
                failure = f"{end.failureDetails.errorType}: {end.failureDetails.errorMessage}"
    if status == "RUNNING" and recorded_end:
        failure = failure or "the replay did not reach the recorded end"
    return Replay(name, status, result, expected_status, expected_result, failure, expected_failure, departures,
                  list(results.patches or []), takes_patch)


class _NoHarness:
    """A registrar's harness for replays: no fakes; the patches a recording was made without."""

    def __init__(self, without_patches: frozenset[str]):
        self._activities = {}
        self._without_patches = without_patches


def _turns(events: list) -> list[tuple[int, int, int]]:
    """(first event, end of its inputs, end) of each turn: from a workflowStarted, the events
    handed to the worker, then the actions recorded after it."""
    starts = [i for i, e in enumerate(events) if e.HasField("workflowStarted")]
    turns = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(events)
        inputs_end = start + 1
        while inputs_end < end and events[inputs_end].WhichOneof("eventType") in _INPUTS:
            inputs_end += 1
        turns.append((start, inputs_end, end))
    return turns


def _action(action, inputs: bool):
    kind = action.WhichOneof("workflowActionType")
    if kind == "scheduleTask":
        return ("activity", action.id, action.scheduleTask.name,
                _json(action.scheduleTask.input.value) if inputs else None)
    if kind == "createTimer":
        return ("timer", action.id, action.createTimer.fireAt.ToJsonString())
    if kind == "completeWorkflow":
        end = action.completeWorkflow
        return ("end", _status(end.workflowStatus), _json(end.result.value) if end.HasField("result") else None)
    return (kind, action.id)


def _recorded(event, inputs: bool):
    kind = event.WhichOneof("eventType")
    if kind == "taskScheduled":
        return ("activity", event.eventId, event.taskScheduled.name,
                _json(event.taskScheduled.input.value) if inputs else None)
    if kind == "timerCreated":
        return ("timer", event.eventId, event.timerCreated.fireAt.ToJsonString())
    if kind == "executionCompleted":
        end = event.executionCompleted
        return ("end", _status(end.workflowStatus), _json(end.result.value) if end.HasField("result") else None)
    if kind in ("executionStalled",):
        return None
    return (kind, event.eventId)


def _describe(actions: list) -> str:
    if not actions:
        return "does nothing"
    parts = []
    for action in actions:
        if action[0] == "activity":
            parts.append(f"calls #{action[1]} {action[2]}" + (f" with {json.dumps(action[3])[:300]}"
                                                               if action[3] is not None else ""))
        elif action[0] == "timer":
            parts.append(f"sets timer #{action[1]} for {action[2]}")
        elif action[0] == "end":
            parts.append(f"ends {action[1]} returning {json.dumps(action[2])}")
        else:
            parts.append(str(action))
    return "; ".join(parts)


def _summary(events: list) -> str:
    kinds = [e.WhichOneof("eventType") for e in events[1:]]
    return ", ".join(kinds) or "nothing new"


def _status(value) -> str:
    return pb.OrchestrationStatus.Name(value).removeprefix("ORCHESTRATION_STATUS_")


def _json(text: str | None):
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
