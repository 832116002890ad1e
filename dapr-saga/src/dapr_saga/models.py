"""What crosses the line between a saga and its activities, as JSON in the workflow's history.

Renaming a field breaks the replay of sagas in flight: add fields with defaults instead.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The statuses a saga gives its entity on the way out (the entity may have more of its own).
COMPENSATING = "COMPENSATING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
NEEDS_ATTENTION = "NEEDS_ATTENTION"

# A gated step's answer when its entity refused it because a cancel was accepted first.
REFUSED = CANCELLED
# The field of a gated step's input that carries the update its entity must accept first.
GATE_FIELD = "enter"


class StepResult(BaseModel):
    """What a step did. `ok=False` with a business `reason` is a definite no (nothing was done);
    `unknown=True` means it timed out or failed technically: it may still have happened, so it
    is undone. A step over a batch answers per part (`parts`), and only the parts that need it
    are undone."""

    ok: bool
    reason: str = ""
    detail: str = ""
    unknown: bool = False
    name: str = ""  # of a part: which one (a SKU, a leg of a trip)
    parts: list["StepResult"] = Field(default_factory=list)

    @classmethod
    def done(cls, detail: str = "", **fields) -> "StepResult":
        return cls(ok=True, detail=detail, **fields)

    @classmethod
    def no(cls, reason: str, detail: str = "", **fields) -> "StepResult":
        """A definite no: nothing happened, nothing to undo."""
        return cls(ok=False, reason=reason, detail=detail, **fields)

    @classmethod
    def maybe(cls, reason: str = "TIMEOUT", detail: str = "", **fields) -> "StepResult":
        """No answer in time, or a technical failure: it may have happened (so it is undone)."""
        return cls(ok=False, unknown=True, reason=reason, detail=detail, **fields)

    @classmethod
    def refused(cls, detail: str = "a cancel was accepted first") -> "StepResult":
        """A gated step its entity refused. Unknown rather than a definite no: an earlier attempt
        of the same activity may have gone past the gate, so it is undone (a no-op if not)."""
        return cls(ok=False, unknown=True, reason=REFUSED, detail=detail)

    @classmethod
    def batch(cls, parts: list["StepResult"]) -> "StepResult":
        """One result for a batch: ok if all parts were; unknown if any may have happened
        unnoticed; else the first definite no. The parts are kept for the timeline and the undo."""
        refusals = [part.reason for part in parts if not part.ok and not part.unknown]
        return cls(ok=all(part.ok for part in parts), unknown=any(part.unknown for part in parts),
                   reason=refusals[0] if refusals else "", parts=parts)

    @property
    def must_undo(self) -> bool:
        """A step is compensated when it succeeded or may have: a definite no left nothing to undo."""
        return self.ok or self.unknown

    @property
    def outcome(self) -> str:
        """How the timeline names it: DONE, CANCELLED (refused at its gate), UNKNOWN, or the reason."""
        if self.ok:
            return "DONE"
        if self.reason == REFUSED:
            return REFUSED
        return "UNKNOWN" if self.unknown else self.reason or "FAILED"


class Gate(BaseModel):
    """An entity's answer to an update: whether it accepted a cancel before it (then it refuses to
    be moved on into an in-flight status, and the saga unwinds)."""

    cancel_requested: bool = False


class PlannedCall(BaseModel):
    """A step's activity with its input, kept so that it can be run again (by a retry)."""

    step: str  # as the timeline names it: "undo ship", "commit"
    activity: str
    input: dict


class Ending(BaseModel):
    """How the saga meant to end its entity. Entities add fields of their own (a tracking number)."""

    model_config = ConfigDict(extra="allow")

    status: str
    reason: str = ""


class Leftover(BaseModel):
    """What a saga that ended in NEEDS_ATTENTION could not do: the calls left, in order, the
    ending it would have reached after them, and the status its entity has while a retry runs
    them. A retry (or a person, by hand) finishes from here."""

    calls: list[PlannedCall]
    ending: Ending
    resume_status: str


class Note(BaseModel):
    """One entry of the entity's timeline. `status` (and `reason`) move the entity with it; `key`
    makes it idempotent (an activity that runs twice records it once). Entities add fields."""

    model_config = ConfigDict(extra="allow")

    step: str
    outcome: str
    detail: str = ""
    key: str = ""
    status: str = ""
    reason: str = ""


class Event(BaseModel):
    """A lifecycle event the update that carries it publishes (`placed`, `completed`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    status: str
    reason: str = ""
    detail: str = ""


class Update(BaseModel):
    """What one update activity takes, with the default Timeline: notes for the entity's
    timeline (the last may move its status), the event to publish, and what is left to do."""

    entity_id: str
    notes: list[Note]
    event: Event | None = None
    leftover: Leftover | None = None
