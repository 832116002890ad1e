"""Run a workflow with its activities in this process: no sidecar, deterministic, virtual clock.

The harness plays the part of Dapr's workflow engine. It keeps the instance's history, hands it
to the SDK's own orchestration executor turn by turn (as the sidecar hands it to the worker, so
every turn replays the whole history: code that is not deterministic fails here as it would in
production), records the actions the executor answers with (activities scheduled, timers created,
the workflow's end) as the engine does, runs the activities (fakes, or the real registered ones),
and delivers their answers, timers and raised events back as history events.

Time is virtual: it moves only when nothing else can happen, to the next timer or late answer,
so a workflow that waits a day for a decision finishes in milliseconds. Retry policies are the
workflow's own (the SDK retries activities from inside the workflow, with durable timers), so an
activity that fails N times is retried exactly as it would be.

Every private SDK name this uses lives in `_sdk.py`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from google.protobuf import timestamp_pb2, wrappers_pb2
from google.protobuf.json_format import MessageToDict

from dapr_saga.registry import fresh, unmarked
from dapr_saga.testing import _sdk
from dapr_saga.testing._sdk import pb
from dapr_saga.testing.fakes import HANG, Attempt, Later, _current

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_log = logging.getLogger("dapr_saga.testing")
_log.setLevel(logging.WARNING)


@dataclass
class ActivityCall:
    """One call of an activity (its retries included: the SDK keeps one execution id for all)."""

    name: str
    input: Any  # as the activity got it: the model its registered activity declares, else the JSON
    execution_id: str
    scheduled_at: datetime
    number: int = 1  # the n-th call of this activity in the run
    attempts: int = 0
    outcome: str = "pending"  # ok, failed (the last attempt raised), pending (hung or late)
    result: Any = None  # the last answer, decoded
    error: BaseException | None = None  # the last attempt's exception

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class Harness:
    """Workflows and activities as `register(runtime)` registers them (the composition root's own
    function), with `fakes` (by activity name) in place of the real activities."""

    def __init__(self, register: Callable[[Any], None], fakes: dict[str, Callable] | None = None, *,
                 start: datetime = START):
        self.fakes = dict(fakes or {})
        self.start_time = start
        self._runtime = _sdk.new_runtime()
        self._activities: dict[str, Callable] = {}  # name -> the function registered (for its input model)
        self._without_patches: frozenset[str] = frozenset()
        register(_Registrar(self._runtime, self))
        self._registry = _sdk.registry_of(self._runtime)

    def _answer(self, run: "Run", task_id: int, call: ActivityCall, encoded: str | None) -> Any:
        """An activity's answer: its fake's, or the registered activity's (called as the worker does)."""
        decoded = _sdk.from_json(encoded) if encoded else None
        fake = self.fakes.get(call.name)
        registered_fn = self._activities.get(call.name)
        call.input = _coerce(registered_fn, decoded, 1) if registered_fn else _coerce(fake, decoded, 0)
        if fake is not None:
            token = _current.set(Attempt(call.name, call.number, call.attempts))
            try:
                return fake(call.input)
            finally:
                _current.reset(token)
        registered = self._registry.activities.get(call.name)
        if registered is None:
            raise AssertionError(f"activity {call.name!r} is neither registered nor faked")
        out = registered(_sdk.activity_context(run.instance_id, task_id, call.execution_id), decoded)
        return _loop().run_until_complete(out) if inspect.isawaitable(out) else out

    def start(self, workflow: str, input: Any = None, *, instance_id: str = "test-instance",
              version: str | None = None, without_patches: Iterable[str] = ()) -> "Run":
        """Start `workflow` and run it until it waits for something that takes time (a timer, a
        late answer) or comes from outside (an event). `version`: start on that version (as a
        saga started before a newer one became the latest replays). `without_patches`: the code
        as it was before these patches (`ctx.is_patched` answers False), which is what a saga
        that met them before the release replays."""
        run = Run(self, workflow, instance_id, version, frozenset(without_patches))
        run._begin(input)
        return run.run_until_idle()

    def run(self, workflow: str, input: Any = None, *, events: Iterable[tuple[str, Any]] = (), **start) -> "Run":
        """Start, raise `events` ((name, data), once the workflow is idle), and run to the end."""
        run = self.start(workflow, input, **start)
        for name, data in events:
            run.raise_event(name, data)
        return run.finish()


class Run:
    """One workflow instance in the harness: drive it, then look at what it did."""

    def __init__(self, harness: Harness, workflow: str, instance_id: str, version: str | None,
                 without_patches: frozenset[str]):
        self.harness = harness
        self.workflow = workflow
        self.instance_id = instance_id
        self.now = harness.start_time
        self.history: list[pb.HistoryEvent] = []
        self.status = "PENDING"
        self.result: Any = None
        self.output: str | None = None  # the result as JSON, as the engine keeps it
        self.failure = ""  # "ErrorType: message" when the workflow failed
        self.custom_status: str | None = None
        self.version = version or ""
        self.patches: list[str] = []
        self.calls: list[ActivityCall] = []
        self.turns = 0
        self._version_asked = version
        self._without_patches = without_patches
        self._queue: list[tuple[datetime, int, pb.HistoryEvent, ActivityCall | None]] = []
        self._seq = 0
        self._by_execution: dict[str, ActivityCall] = {}
        self._numbers: dict[str, int] = {}  # activity name -> calls so far
        self._timers: dict[int, datetime] = {}

    # ---- driving ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.status not in ("PENDING", "RUNNING")

    def raise_event(self, name: str, data: Any = None, *, after: timedelta = timedelta(0)) -> "Run":
        """Raise the external event `name` to the instance (now, or `after` on the clock). An
        event no wait is open for is kept until the workflow waits for it."""
        encoded = _sdk.to_json(data) if data is not None else None
        self._push(self.now + after, pb.HistoryEvent(eventId=-1, eventRaised=pb.EventRaisedEvent(
            name=name, input=_string(encoded))))
        return self

    def run_until_idle(self) -> "Run":
        """Everything that happens without the clock moving."""
        return self._drain(self.now)

    def advance(self, delta: timedelta) -> "Run":
        """Move the clock `delta` on, with everything due in between (timers, late answers)."""
        self._drain(self.now + delta)
        if not self.done:
            self.now = max(self.now, self.now + delta)
        return self

    def finish(self, within: timedelta = timedelta(days=3650)) -> "Run":
        """Skip time until the workflow ends. One that waits for an event nobody raises, or an
        activity that never answers, fails the test with what it waits for."""
        self._drain(self.now + within)
        if not self.done:
            raise AssertionError(f"the workflow waits for something that can never happen: {self.waiting()}")
        return self

    def waiting(self) -> str:
        pending = [c.name for c in self.calls if c.outcome == "pending"]
        timers = sorted(self._timers.values())
        return (f"activities without an answer {pending}, timers {[t.isoformat() for t in timers]}, "
                f"at {self.now.isoformat()}; raise the events it waits for with run.raise_event")

    # ---- what it did ------------------------------------------------------------------------

    def activities(self, *, include: Callable[[ActivityCall], bool] = lambda call: True) -> list[str]:
        """The names of the activities called, in order (a retried call once)."""
        return [call.name for call in self.calls if include(call)]

    def called(self, name: str) -> list[ActivityCall]:
        return [call for call in self.calls if call.name == name]

    def history_json(self) -> list[dict]:
        return [MessageToDict(event) for event in self.history]

    def save(self, path: Path, **about) -> Path:
        """Write the history as tests/replay keeps recordings (`dapr_saga.testing.replay` reads it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**about, "workflow": self.workflow, "version": self.version, "instance_id": self.instance_id}
        if self._without_patches:
            record["without_patches"] = sorted(self._without_patches)
        head = json.dumps(record)[:-1]
        # A failure's stack trace names where the fake raised on this machine: nothing a replay
        # reads, and no recording should carry a machine's paths.
        events = ",\n".join(json.dumps(_without_stack_traces(event), separators=(",", ":"))
                             for event in self.history_json())
        path.write_text(f'{head}, "events": [\n{events}\n]}}\n')  # one event a line
        return path

    # ---- the engine ---------------------------------------------------------------------------

    def _push(self, at: datetime, event: pb.HistoryEvent, late: ActivityCall | None = None) -> None:
        self._seq += 1
        self._queue.append((at, self._seq, event, late))

    def _begin(self, input: Any) -> None:
        encoded = _sdk.to_json(input) if input is not None else None
        started = pb.ExecutionStartedEvent(name=self.workflow, input=_string(encoded),
                                           workflowInstance=pb.WorkflowInstance(instanceId=self.instance_id))
        self._push(self.now, pb.HistoryEvent(eventId=-1, timestamp=_ts(self.now), executionStarted=started))

    def _drain(self, until: datetime) -> "Run":
        while not self.done and self._queue:
            self._queue.sort(key=lambda item: (item[0], item[1]))
            at, _, event, late = self._queue[0]
            if at > until:
                break
            self._queue.pop(0)
            self.now = max(self.now, at)
            if late is not None:
                late.outcome = "ok"
            self._turn(event)
        return self

    def _turn(self, event: pb.HistoryEvent) -> None:
        self.turns += 1
        if self.turns > 100_000:
            raise AssertionError("more than 100,000 workflow turns: a loop that never ends?")
        if event.HasField("timerFired"):
            self._timers.pop(event.timerFired.timerId, None)
        event.timestamp.CopyFrom(_ts(self.now))
        started = pb.HistoryEvent(eventId=-1, timestamp=_ts(self.now), workflowStarted=pb.WorkflowStartedEvent())
        if not self.history and self._version_asked:
            started.workflowStarted.version.CopyFrom(pb.WorkflowVersion(name=self._version_asked))
        new_events = [started, event]
        self.harness._without_patches = self._without_patches
        try:
            results = _sdk.executor(self.harness._registry, _log).execute(self.instance_id, self.history, new_events)
        finally:
            self.harness._without_patches = frozenset()
        if results.version_name or results.patches:
            started.workflowStarted.version.CopyFrom(pb.WorkflowVersion(
                name=results.version_name or self.version, patches=list(results.patches or [])))
            self.version = results.version_name or self.version
            self.patches = list(results.patches or [])
        self.history.extend(new_events)
        self.custom_status = results.encoded_custom_status
        self.status = "RUNNING"
        for action in results.actions:
            self._apply(action)

    def _apply(self, action) -> None:
        kind = action.WhichOneof("workflowActionType")
        if kind == "scheduleTask":
            task = action.scheduleTask
            scheduled = pb.TaskScheduledEvent(name=task.name, input=task.input if task.HasField("input") else None,
                                              taskExecutionId=task.taskExecutionId)
            self.history.append(pb.HistoryEvent(eventId=action.id, timestamp=_ts(self.now), taskScheduled=scheduled))
            self._run_activity(action.id, task)
        elif kind == "createTimer":
            timer = action.createTimer
            created = pb.TimerCreatedEvent(fireAt=timer.fireAt, name=timer.name)
            origin = timer.WhichOneof("origin")
            if origin:
                getattr(created, origin).CopyFrom(getattr(timer, origin))
            self.history.append(pb.HistoryEvent(eventId=action.id, timestamp=_ts(self.now), timerCreated=created))
            fire_at = timer.fireAt.ToDatetime(tzinfo=timezone.utc)
            if timer.fireAt != _sdk.OPTIONAL_TIMER_FIRE_AT and fire_at.year < 9999:  # a wait without timeout
                self._timers[action.id] = fire_at
                self._push(fire_at, pb.HistoryEvent(eventId=-1, timerFired=pb.TimerFiredEvent(
                    timerId=action.id, fireAt=timer.fireAt)))
        elif kind == "completeWorkflow":
            end = action.completeWorkflow
            self.history.append(pb.HistoryEvent(eventId=action.id, timestamp=_ts(self.now),
                                                executionCompleted=pb.ExecutionCompletedEvent(
                                                    workflowStatus=end.workflowStatus,
                                                    result=end.result if end.HasField("result") else None,
                                                    failureDetails=end.failureDetails
                                                    if end.HasField("failureDetails") else None)))
            self.status = pb.OrchestrationStatus.Name(end.workflowStatus).removeprefix("ORCHESTRATION_STATUS_")
            if self.status == "CONTINUED_AS_NEW":
                raise NotImplementedError("continue_as_new is not supported by the harness yet")
            self.output = end.result.value if end.HasField("result") else None
            self.result = _sdk.from_json(self.output) if self.output else None
            if end.HasField("failureDetails"):
                self.failure = f"{end.failureDetails.errorType}: {end.failureDetails.errorMessage}"
        elif kind == "workflowVersionNotAvailable":
            self.status = "STALLED"
            self.failure = f"version {self.version or '?'} of {self.workflow} is not registered"
        else:
            raise NotImplementedError(f"the harness does not run `{kind}` actions yet (child workflows, "
                                      "events to other instances, terminations)")

    # ---- activities ---------------------------------------------------------------------------

    def _run_activity(self, task_id: int, task) -> None:
        call = self._by_execution.get(task.taskExecutionId)
        encoded = task.input.value if task.HasField("input") else None
        if call is None:
            self._numbers[task.name] = self._numbers.get(task.name, 0) + 1
            call = ActivityCall(task.name, None, task.taskExecutionId, self.now, number=self._numbers[task.name])
            self._by_execution[task.taskExecutionId] = call
            self.calls.append(call)
        call.attempts += 1
        try:
            answer = self.harness._answer(self, task_id, call, encoded)
        except Exception as error:  # noqa: BLE001 - an activity's error goes to the workflow, as the worker sends it
            answer = error
        delay = timedelta(0)
        if isinstance(answer, Later):
            delay, answer = answer.after, answer.answer
        if answer is HANG:
            call.outcome = "pending"
            return
        if isinstance(answer, BaseException):
            call.outcome, call.error = ("pending" if delay else "failed"), answer
            event = pb.HistoryEvent(eventId=-1, taskFailed=pb.TaskFailedEvent(
                taskScheduledId=task_id, failureDetails=_sdk.new_failure_details(answer),
                taskExecutionId=task.taskExecutionId))
        else:
            encoded_result = _sdk.to_json(answer) if answer is not None else None
            call.outcome, call.error = ("pending" if delay else "ok"), None
            call.result = _sdk.from_json(encoded_result) if encoded_result else None
            event = pb.HistoryEvent(eventId=-1, taskCompleted=pb.TaskCompletedEvent(
                taskScheduledId=task_id, result=_string(encoded_result), taskExecutionId=task.taskExecutionId))
        self._push(self.now + delay, event, late=call if delay and not isinstance(answer, BaseException) else None)


_event_loop: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _event_loop
    if _event_loop is None or _event_loop.is_closed():
        _event_loop = asyncio.new_event_loop()
    return _event_loop


def _coerce(fn: Callable | None, value: Any, position: int) -> Any:
    """The input as `fn` declares it at `position` (a model with `model_validate`), as the SDK
    coerces it: the registered activity's (ctx, input), else the fake's own (input)."""
    if fn is None or not isinstance(value, dict):
        return value
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return value
    if len(params) <= position:
        return value
    try:
        hint = typing.get_type_hints(fn).get(params[position].name)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: the JSON as it is
        return value
    for candidate in (hint, *typing.get_args(hint)):
        if inspect.isclass(candidate) and hasattr(candidate, "model_validate"):
            return candidate.model_validate(value)
    return value


class _Registrar:
    """What `register(runtime)` is given: it registers on the harness's own runtime, with a fresh
    wrapper each time (the SDK registers a function object once per process)."""

    def __init__(self, runtime, harness: Harness):
        self._runtime = runtime
        self._harness = harness

    def register_versioned_workflow(self, fn, *, name, version_name=None, is_latest):
        self._runtime.register_versioned_workflow(self._hooked(fn), name=name, version_name=version_name,
                                                  is_latest=is_latest)

    def register_workflow(self, fn, *, name=None):
        self._runtime.register_workflow(self._hooked(fn), name=name or fn.__name__)

    def register_activity(self, fn, *, name=None):
        name = name or fn.__name__
        self._harness._activities[name] = fn
        self._runtime.register_activity(fresh(fn), name=name)

    def _hooked(self, fn):
        """The workflow, with `ctx.is_patched` answering False for the run's `without_patches`."""
        harness = self._harness

        def hooked(ctx, *args):
            off = harness._without_patches
            if off:
                asked = ctx.is_patched
                ctx.is_patched = lambda patch: False if patch in off else asked(patch)
            return fn(ctx, *args)
        return unmarked(functools.update_wrapper(hooked, fn))

    def __getattr__(self, name):
        return getattr(self._runtime, name)


def _ts(at: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _string(value: str | None) -> wrappers_pb2.StringValue | None:
    return wrappers_pb2.StringValue(value=value) if value is not None else None


def _without_stack_traces(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_stack_traces(item) for key, item in value.items() if key != "stackTrace"}
    if isinstance(value, list):
        return [_without_stack_traces(item) for item in value]
    return value
