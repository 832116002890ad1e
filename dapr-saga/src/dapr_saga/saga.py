"""The saga runner: runs steps (alone or in parallel groups), remembers what to undo, keeps the
entity's timeline, and ends the saga: completed, failed or cancelled after compensating in
reverse, or NEEDS_ATTENTION with what is left to do.

All of this is replayed code: it runs inside the workflow function, again on every step, from the
workflow's history. So it makes no I/O, reads no clock and no environment; every side effect is
an activity the saga calls by its registered name. A change here that changes what a saga calls,
or in which order, breaks sagas in flight of every version that uses it: such a change comes
behind a patch (`ctx.is_patched`), as the rules' patches do, and the replay check
(`dapr_saga.testing.replay`) is what proves it did not.

Control flow out of the middle of a saga (registered through `dapr_saga.register`, or wrapped by
`saga_workflow`): a gated step, `enter` or `wait_for_event` that meets an accepted cancel raises
`SagaCancelled` (the saga unwinds and ends CANCELLED); a step with `fails_as` that says no
raises `SagaFailed` (it unwinds and ends FAILED with that reason); a fault raises `SagaStopped`
(it unwinds and ends NEEDS_ATTENTION). Do not catch these in a saga.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from datetime import timedelta
from typing import Any, Callable

import dapr.ext.workflow as wf

from dapr_saga.models import (
    CANCELLED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    NEEDS_ATTENTION,
    REFUSED,
    Ending,
    Gate,
    Leftover,
    Note,
    PlannedCall,
    StepResult,
)
from dapr_saga.steps import Call, Rules, Step, with_gate
from dapr_saga.timeline import Timeline

# What an update activity raises when the notes are recorded but the event did not reach the
# broker: the saga notes the miss on the timeline instead of failing its entity.
EVENT_NOT_PUBLISHED = "EventNotPublished"
# The reason of a saga that a fault stopped, once a person (or a retry) ends it.
INTERNAL_ERROR = "INTERNAL_ERROR"

_GRPC_DETAILS = re.compile(r'details = "([^"]*)"')


class EventNotPublished(Exception):
    """Raise it from an update activity whose notes are recorded but whose event the broker
    kept refusing: the saga notes it (`event <type> UNPUBLISHED`) and goes on."""


class ServiceUnavailable(Exception):
    """Raise it from an activity whose service (or a sidecar on the way) is away: the step's
    retry policy retries it, then the saga counts its outcome unknown (and undoes it)."""


class SagaCancelled(Exception):
    """The entity accepted a cancel first: the saga unwinds and ends CANCELLED."""

    def __init__(self, saga: "Saga"):
        super().__init__("cancelled")
        self.saga = saga


class SagaFailed(Exception):
    """A step with `fails_as` said no: the saga unwinds and ends FAILED with that reason."""

    def __init__(self, saga: "Saga", reason: str):
        super().__init__(reason)
        self.saga, self.reason = saga, reason


class SagaStopped(Exception):
    """A fault stopped the saga going forward (Saga.stop_after_fault ends it)."""

    def __init__(self, saga: "Saga"):
        super().__init__(saga.fault)
        self.saga = saga


def saga_workflow(workflow: Callable) -> Callable:
    """The workflow as it is registered (`dapr_saga.register` does this): a saga that is
    cancelled, fails a step with `fails_as`, or is stopped by a fault ends through its runner
    (compensating first) instead of failing the workflow."""
    @functools.wraps(workflow)
    def run(ctx, workflow_input):
        try:
            return (yield from workflow(ctx, workflow_input))
        except SagaCancelled as cancelled:
            return (yield from cancelled.saga.cancel())
        except SagaFailed as failed:
            return (yield from failed.saga.fail(failed.reason))
        except SagaStopped as stopped:
            return (yield from stopped.saga.stop_after_fault())
    return run


class Saga:
    """One run of a saga: its steps, what to undo, its entity's timeline, its ending."""

    def __init__(self, ctx: wf.DaprWorkflowContext, rules: Rules, timeline: Timeline, *, key_prefix: str = ""):
        self.ctx = ctx
        self.rules = rules
        self.timeline = timeline
        self.to_undo: list[Call] = []
        self.unwritten: list[Note] = []
        # The entity records an entry once per key; a retry's entries carry their own prefix.
        self.key_prefix = key_prefix
        self.fault = ""  # what stopped the saga, when a fault did
        self.ending = False  # set once the saga unwinds or ends: it no longer stops on faults
        # What a fault leaves for a person when there is nothing to undo (a retry's calls).
        self.left_on_fault: Leftover | None = None
        self._updates: dict = {}  # update task -> (notes, event, leftover) it carries

    # ---- the timeline and events ------------------------------------------------------------

    def note(self, step: str, outcome: str, *, status: str = "", reason: str = "", detail: str = "",
             **fields) -> None:
        """Add a timeline entry; written with the next update (`status` moves the entity)."""
        if not self.ctx.is_replaying:
            self.timeline.log(logging.INFO, step, outcome, detail)
        self.unwritten.append(Note(step=step, outcome=outcome, detail=detail, key=f"{self.key_prefix}{step}:{outcome}",
                                   status=status, reason=reason, **fields))

    def _take_update(self, announce: str = "", *, status: str = "", reason: str = "", detail: str = "",
                    leftover: Leftover | None = None):
        """The noted entries (taken: they are written with this update) and the `announce` event,
        as the update activity's input."""
        event = self.timeline.event(announce, status=status or announce.upper(), reason=reason,
                                    detail=detail) if announce else None
        notes, self.unwritten = self.unwritten, []
        return notes, event, leftover, self.timeline.update(notes, event=event, leftover=leftover)

    def start_update(self, announce: str = "", *, policy: wf.RetryPolicy | None = None, **fields):
        """Start the activity that writes the noted entries and publishes `announce` (if any)."""
        notes, event, leftover, message = self._take_update(announce, **fields)
        task = self.ctx.call_activity(self.timeline.activity, input=message,
                                      retry_policy=policy or self.rules.update_retry)
        self._updates[task] = (notes, event, leftover)
        return task

    def finish_update(self, task, announce: str):
        """The entity's answer (a Gate) to a finished update. An event the broker kept refusing
        must not fail the entity: the miss goes on the timeline instead (use with `yield from`)."""
        if task.is_failed and failed_with(task, EVENT_NOT_PUBLISHED):
            self.note(f"event {announce}", "UNPUBLISHED", detail=short(task.get_exception()))
            return (yield from self.update())
        if task.is_failed and self._patched(self.rules.faults_patch):
            return self._unrecorded(task)
        return Gate.model_validate(task.get_result() or {})  # an update activity may answer nothing

    def update(self, announce: str = "", **event_fields):
        """Write the noted entries now (and publish `announce`): the entity's Gate."""
        task = self.start_update(announce, **event_fields)
        yield wf.when_any([task])  # completes on failure too: finish_update looks at it
        return (yield from self.finish_update(task, announce))

    def end_with_update(self, announce: str = "", **event_fields):
        """The saga's last update: retried for longer than the others."""
        self.ending = True
        policy = self.rules.ending_retry if self.rules.ending_retry and self._patched(self.rules.ending_patch) \
            else self.rules.update_retry
        task = self.start_update(announce, policy=policy, **event_fields)
        yield wf.when_any([task])
        return (yield from self.finish_update(task, announce))

    def _unrecorded(self, task) -> Gate:
        """An update the entity never took, after its retries (its host or store away, or a bug).
        Its entries are noted again, for the next update. An update that moved the entity into a
        status, before the saga unwinds or ends, is a gate the entity did not open: a fault, and
        the saga must not go on past it, so it stops (SagaStopped). Any other goes on, and the
        saga leaves what the entity has not heard as its custom status, for the entity to find
        (when it sees the saga ended without telling it)."""
        notes, event, leftover = self._updates[task]
        self.unwritten = notes + self.unwritten
        fault = f"the {self.timeline.label}'s record could not be written: {short(task.get_exception())}"
        if not self.ctx.is_replaying:
            self.timeline.log(logging.ERROR, "update", "UNRECORDED", fault)
        if not self.ending and any(note.status for note in notes):
            self.fault = self.fault or fault
            raise SagaStopped(self)
        left = self.timeline.update(self.unwritten, event=event, leftover=leftover)
        self.ctx.set_custom_status(_json(left))
        return Gate()

    def entering(self, status: str, step: str):
        """The update a gated step asks its entity to accept first: the entries noted so far and
        the move to `status`."""
        self.note(step, "STARTED", status=status)
        notes, self.unwritten = self.unwritten, []
        return self.timeline.update(notes)

    def enter(self, status: str, step: str, announce: str = ""):
        """Move the entity to `status` (announcing it); a cancel it accepted first unwinds the saga."""
        self.note(step, "STARTED", status=status)
        gate = yield from self.update(announce, status=status)
        if gate.cancel_requested:
            raise SagaCancelled(self)
        return gate

    # ---- running steps ----------------------------------------------------------------------

    def carry_over(self, calls: list[Call]) -> None:
        """Steps an earlier workflow of the same saga did (a saga that stops at a gate and is
        taken on by another workflow when the gate opens): undone, in reverse, if this one
        unwinds. Only succeeded steps are carried over; a failure ends the first workflow."""
        for call in calls:
            undo = call.to_undo(StepResult.done())
            if undo:
                self.to_undo.append(undo)

    def run(self, call: Call):
        """Run one step; its StepResult."""
        results = yield from self.run_parallel([call])
        return results[0]

    def run_parallel(self, calls: list[Call], announce: str = ""):
        """Start every call (with `announce`, also the update that writes the timeline and
        publishes that event), wait for all of them (a failed one does not stop the wait for the
        others), note each outcome, and remember what to undo. A step with a gate asks its entity
        first; a refusal unwinds the saga as cancelled, once every call has answered."""
        calls = [Call(c.step, with_gate(c.input, self.entering(c.step.gate, c.step.name))) if c.step.gate else c
                 for c in calls]
        tasks = [self.ctx.call_activity(c.step.do, input=c.input, retry_policy=c.step.retry or self.rules.step_retry)
                 for c in calls]
        timers = {task: self.ctx.create_timer(c.step.timeout) for c, task in zip(calls, tasks) if c.step.timeout}
        update = self.start_update(announce) if announce else None
        pending = tasks + ([update] if update else []) + list(timers.values())
        timed_out = set()
        while any(t in pending for t in tasks + ([update] if update else [])):
            done = yield wf.when_any(pending)
            pending.remove(done)
            for task, timer in timers.items():
                if done is timer and task in pending:
                    pending.remove(task)  # no answer in time: unknown, and undone
                    timed_out.add(task)
                elif done is task and timer in pending:
                    pending.remove(timer)
        results = [self._result(call, task, timed_out) for call, task in zip(calls, tasks)]
        for call, result in zip(calls, results):  # first: a fault in the update below unwinds them
            undo = call.to_undo(result)
            if undo:
                self.to_undo.append(undo)
        if update:
            yield from self.finish_update(update, announce)
        for call, result in zip(calls, results):
            for name, part in [(f"{call.name} {p.name}", p) for p in result.parts] or [(call.name, result)]:
                self.note(name, part.outcome, detail=part.detail)
        if any(c.step.gate and r.reason == REFUSED for c, r in zip(calls, results)):
            raise SagaCancelled(self)
        failed_as = [c.step.fails_as for c, r in zip(calls, results) if c.step.fails_as and not r.ok]
        if failed_as:
            raise SagaFailed(self, failed_as[0])
        return results

    def _result(self, call: Call, task, timed_out: set) -> StepResult:
        """A step's result. A step that failed after its retries is an unknown outcome (it may
        have happened, so it is undone); one that failed for another reason than a service
        being away is also a fault, which the ending reports."""
        if task in timed_out:
            return StepResult.maybe("TIMEOUT", f"no answer within {call.step.timeout}")
        if task.is_failed and _error_type(task) not in self.rules.technical_errors and \
                self._patched(self.rules.faults_patch):
            self.fault = self.fault or f"{call.name} ({call.step.do}) raised {_error_type(task)}: " \
                                       f"{short(task.get_exception())}"
            if not self.ctx.is_replaying:
                self.timeline.log(logging.ERROR, call.name, "FAULT", self.fault)
        return result_of(task)

    def wait_for_event(self, name: str, timeout: timedelta, *, cancel_event: str = ""):
        """Wait for the external event `name` (its data), or `timeout` (None). With
        `cancel_event`, that event unwinds the saga as cancelled. An event raised before the
        wait is kept by the engine until then; an open wait costs a durable timer for as long
        as it lasts, so wait only where the saga must."""
        cancel = self.ctx.wait_for_external_event(cancel_event) if cancel_event else None
        event = self.ctx.wait_for_external_event(name)
        timer = self.ctx.create_timer(timeout)
        winner = yield wf.when_any([event, timer] + ([cancel] if cancel else []))
        if cancel is not None and winner is cancel:
            raise SagaCancelled(self)
        if winner is timer:
            return None
        return event.get_result()

    # ---- endings ----------------------------------------------------------------------------

    def complete(self, detail: str = "", **fields):
        """End COMPLETED (announced as `completed`)."""
        self.note("complete", COMPLETED, status=COMPLETED, detail=detail, **fields)
        yield from self.end_with_update("completed", detail=detail)
        return COMPLETED

    def complete_with(self, step: Step, carry: Callable[[Any], Any], *, detail: str = "", left_detail: str,
                      leftover: Leftover, **fields):
        """The last step and the ending in one activity (one workflow round trip less): `carry`
        builds the step's input from the completion update, which the activity records once
        the step is done. A step that keeps failing leaves `leftover` to do (nothing is undone:
        the saga is past the point of no return) and ends NEEDS_ATTENTION with `left_detail`."""
        self.note("complete", COMPLETED, status=COMPLETED, detail=detail, **fields)
        *_, completion = self._take_update("completed", detail=detail)
        task = self.ctx.call_activity(step.do, input=carry(completion),
                                      retry_policy=step.retry or self.rules.update_retry)
        yield wf.when_any([task])  # completes on failure too
        if task.is_failed and failed_with(task, EVENT_NOT_PUBLISHED):
            # Done and recorded; only the event is missing: noted, the entity stays COMPLETED.
            self.note("event completed", "UNPUBLISHED", detail=str(task.get_exception())[:200])
            yield from self.update()
            return COMPLETED
        done = result_of(task)
        if done.ok:
            return COMPLETED
        self.note(step.name, "UNKNOWN" if done.unknown else done.reason or "FAILED", detail=done.detail)
        return (yield from self.needs_attention(left_detail, leftover))

    def fail(self, reason: str, *, cancel_wins: bool | str = False):
        """Compensate in reverse and end FAILED with `reason`. `cancel_wins`: an entity that
        answers the compensation's update saying it accepted a cancel first ends CANCELLED
        instead (a patch name: only sagas that take that patch)."""
        return (yield from self._unwind(FAILED, reason, cancel_wins=cancel_wins))

    def cancel(self):
        """Compensate in reverse and end CANCELLED."""
        return (yield from self._unwind(CANCELLED, ""))

    def needs_attention(self, detail: str, leftover: Leftover):
        """Stop here, never silently: the entity records what is left to do and how it would
        have ended, for a retry or a person."""
        if self.fault:
            detail = f"{detail}; fault: {self.fault}"[:500]
        self.note("attention", "NEEDED", status=NEEDS_ATTENTION, detail=detail)
        yield from self.end_with_update("needs_attention", detail=detail, leftover=leftover)
        return NEEDS_ATTENTION

    def leave(self, detail: str, calls: list[Call], ending: Ending, resume_status: str):
        """NEEDS_ATTENTION with `calls` still to do, then `ending` (nothing is undone)."""
        return (yield from self.needs_attention(detail, Leftover(calls=[c.planned() for c in calls], ending=ending,
                                                                 resume_status=resume_status)))

    def finish(self, final: str, reason: str):
        """End a saga that undid its steps (or a retry that finished them) in `final`."""
        self.note("finish", final, status=final, reason=reason)
        yield from self.end_with_update(final.lower(), status=final, reason=reason)
        return final

    def stop_after_fault(self):
        """End a saga a fault stopped: undo every step that succeeded or may have, then leave the
        entity to a person, saying what failed (NEEDS_ATTENTION, ending FAILED INTERNAL_ERROR
        once the rest is done). A saga with nothing to undo but calls of its own left (a retry)
        leaves those."""
        if self.left_on_fault is not None:
            return (yield from self.needs_attention("stopped", self.left_on_fault))
        return (yield from self._unwind(FAILED, INTERNAL_ERROR))

    def _unwind(self, final: str, reason: str, cancel_wins: bool | str = False):
        """Compensate in reverse; end in `final`, or NEEDS_ATTENTION if an undo keeps failing or
        a fault came first (then a person looks before the entity ends FAILED)."""
        self.ending = True
        self.note("compensate", "STARTED", status=COMPENSATING, reason=reason)
        gate = yield from self.update()
        if cancel_wins and gate.cancel_requested and (cancel_wins is True or self._patched(cancel_wins)):
            final, reason = CANCELLED, ""  # the entity took a cancel first
        stuck: list[Call] = []
        for undo in reversed(self.to_undo):
            result = yield from self.run(undo)
            if not result.ok:
                stuck.append(undo)
        if self.fault and final == FAILED:
            reason = INTERNAL_ERROR
        if stuck or self.fault:
            names = ", ".join(undo.name.removeprefix("undo ") for undo in stuck)
            leftover = Leftover(calls=[undo.planned() for undo in stuck], ending=Ending(status=final, reason=reason),
                                resume_status=COMPENSATING)
            detail = f"could not undo: {names} (after {reason or 'cancel'})" if stuck else "undone"
            return (yield from self.needs_attention(detail, leftover))
        return (yield from self.finish(final, reason))

    # ---- a retry of what a saga left ----------------------------------------------------------

    def retry(self, leftover: Leftover, *, attempt: int, by: str = ""):
        """Run again, in order, the calls a saga left (each is idempotent by its business key, so
        one that did happen is only done again), and end as that saga would have; a call that
        still fails leaves the entity NEEDS_ATTENTION again with what is still left. A fault
        stops the retry with all of it still to do."""
        self.left_on_fault = leftover
        self.note("retry", "STARTED", status=leftover.resume_status, detail=f"attempt {attempt}, by {by or 'unknown'}")
        yield from self.update()
        still_stuck: list[PlannedCall] = []
        for planned in leftover.calls:
            result = yield from self.run(Call.again(planned))
            if not result.ok:
                still_stuck.append(planned)
        if still_stuck:
            names = ", ".join(call.step for call in still_stuck)
            left = leftover.model_copy(update={"calls": still_stuck})
            return (yield from self.needs_attention(f"retry {attempt} could not: {names}", left))
        ending = leftover.ending
        if ending.status == COMPLETED:
            return (yield from self.complete(**self.timeline.completion(ending)))
        return (yield from self.finish(ending.status, ending.reason))

    def _patched(self, patch: str) -> bool:
        return not patch or self.ctx.is_patched(patch)


def failed_with(task, error_type: str) -> bool:
    return _error_type(task) == error_type


def _error_type(task) -> str:
    """The type name of the exception a failed activity raised, as the engine recorded it."""
    details = getattr(task.get_exception(), "details", None)
    return getattr(details, "error_type", "")


def result_of(task) -> StepResult:
    if task.is_failed:
        return StepResult(ok=False, unknown=True, reason="ERROR", detail=short(task.get_exception()))
    return StepResult.model_validate(task.get_result())


def short(error: Exception) -> str:
    """A one-line reason for the timeline: a gRPC error's details, else the first line."""
    text = str(error)
    details = _GRPC_DETAILS.search(text)
    if details:
        return details.group(1)[:200]
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _json(message: Any) -> str:
    return message.model_dump_json() if hasattr(message, "model_dump_json") else json.dumps(message)

