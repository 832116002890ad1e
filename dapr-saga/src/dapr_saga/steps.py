"""Steps (an activity and the activity that undoes it), calls (a step with its input), and the
rules a saga version runs by (its retry policies and patches).

A saga version's steps and rules are part of what its sagas replay: declare them beside the
version's workflow function and never share them with another version (change them by writing
a new version, or behind `ctx.is_patched`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf

from dapr_saga.models import GATE_FIELD, PlannedCall, StepResult

# What activities raise when a service (or a sidecar on the way) is away: retried by the step's
# policy, then counted as an unknown outcome (undone). Any other exception is a fault.
TECHNICAL_ERRORS = frozenset({"ServiceUnavailable"})


@dataclass(frozen=True)
class Rules:
    """What one saga version runs by, frozen with it.

    `step_retry` retries a step's activity after a technical failure (a business answer is a
    result and is never retried); `update_retry` retries the updates of the entity's timeline,
    which must outlast a sidecar or broker restart; `ending_retry` the last update (longer
    still: a saga that cannot record its end leaves it as its custom status). Errors named in
    `technical_errors` mean a service was away; any other error out of an activity is a fault:
    the saga stops, undoes what it did and leaves its entity to a person.

    A rule added to a version after sagas of it were in flight goes behind a patch: sagas that
    passed the place before the release replay without it (`faults_patch`, `ending_patch`; an
    empty name means the rule always applies).
    """

    step_retry: wf.RetryPolicy | None
    update_retry: wf.RetryPolicy | None
    ending_retry: wf.RetryPolicy | None = None  # default: update_retry
    technical_errors: frozenset[str] = TECHNICAL_ERRORS
    faults_patch: str = ""
    ending_patch: str = ""


@dataclass(frozen=True)
class Step:
    """One step of a saga: the activity that does it, the one that undoes it (or None), its
    retry policy (None: the rules' `step_retry`) and its timeout.

    `timeout`: the saga waits that long (a durable timer) and then counts the step as unknown,
    so it is undone; the activity may still answer later, which is why every undo must be
    idempotent and must also cancel a call that lands after it. Without one the activity
    bounds itself (a gRPC deadline, say) and answers `StepResult.maybe()`.

    `gate`: the step moves the entity into this status, and asks it first, inside the same
    activity (its input's `enter` field carries the update): the entity refuses when a cancel
    came first (`StepResult.refused()`), and the saga unwinds as cancelled.

    `fails_as`: when the step says no (or may not have happened), the saga fails with this
    reason (compensating what was done). Without it the caller decides.
    """

    name: str
    do: str
    undo: str | None = None
    retry: wf.RetryPolicy | None = None
    timeout: timedelta | None = None
    gate: str = ""
    fails_as: str = ""

    def __call__(self, input: Any) -> "Call":
        return Call(self, input)


@dataclass(frozen=True)
class Call:
    """A step with its input (a pydantic model, or JSON data)."""

    step: Step
    input: Any = field(default=None)

    @property
    def name(self) -> str:
        return self.step.name

    def planned(self) -> PlannedCall:
        """This call as data, to be run again by a retry."""
        return PlannedCall(step=self.step.name, activity=self.step.do, input=_as_data(self.input))

    def to_undo(self, result: StepResult) -> "Call | None":
        """The undo this result calls for, if any (a definite no left nothing to undo). A batch
        (`parts`) undoes only the parts that need it: its input's `only(keep)` says which."""
        if not self.step.undo:
            return None
        undo = Step(f"undo {self.step.name}", self.step.undo, retry=self.step.retry)
        if result.parts:
            keep = [part.must_undo for part in result.parts]
            return Call(undo, self.input.only(keep)) if any(keep) else None
        if not result.must_undo:
            return None
        return Call(undo, without_gate(self.input))

    @classmethod
    def again(cls, planned: PlannedCall, retry: wf.RetryPolicy | None = None) -> "Call":
        """A planned call, to be run again (it has no undo: it is one)."""
        return cls(Step(planned.step, planned.activity, retry=retry), planned.input)


def without_gate(input: Any) -> Any:
    """The input without the update its entity must accept first: an undo passes no gate."""
    if hasattr(input, "model_copy"):
        return input.model_copy(update={GATE_FIELD: None})
    if isinstance(input, dict) and GATE_FIELD in input:
        return {**input, GATE_FIELD: None}
    return input


def with_gate(input: Any, update: Any) -> Any:
    if hasattr(input, "model_copy"):
        return input.model_copy(update={GATE_FIELD: update})
    return {**(input or {}), GATE_FIELD: update}


def _as_data(input: Any) -> dict:
    if hasattr(input, "model_dump"):
        return input.model_dump(mode="json")
    return input
