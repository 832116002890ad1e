"""How a saga's notes reach the entity it works for (an order, a trip): the activity that records
them, and the messages they travel in.

The saga notes entries as it goes and sends them in batches, with the next update (a status
change, an announcement, the ending, or a gated step asking its entity first): one workflow
round trip and one write to the entity for several entries. Entries are durable from the moment
they are noted: they are derived from the workflow's own history.

`Timeline` sends the kit's own models (`Update` of `Note`s) to an activity you name. An entity
with messages of its own subclasses it and overrides `update` (and `note`, `event`): that is
data shaping only, the saga decides what is sent and when. This is replayed code: keep it free
of I/O, clocks and randomness.
"""

from __future__ import annotations

import logging
from typing import Any

from dapr_saga.models import Ending, Event, Leftover, Note, Update


class Timeline:
    """The default: `Update(entity_id, notes, event, leftover)` to the activity `activity`, which
    answers a `Gate`. `label` names the entity in log lines (`trip=t-1 step=flight outcome=DONE`)."""

    def __init__(self, entity_id: str, activity: str, *, label: str = "entity",
                 logger: logging.Logger | None = None):
        self.entity_id = entity_id
        self.activity = activity
        self.label = label
        self.logger = logger or logging.getLogger("dapr_saga")

    def update(self, notes: list[Note], *, event: Event | None = None, leftover: Leftover | None = None) -> Any:
        """The input of one update activity."""
        return Update(entity_id=self.entity_id, notes=notes, event=event, leftover=leftover)

    def event(self, type: str, *, status: str, reason: str = "", detail: str = "") -> Event:
        """The lifecycle event `type` (`announce=` of an update)."""
        return Event(type=type, status=status, reason=reason, detail=detail)

    def completion(self, ending: Ending) -> dict:
        """The fields `Saga.complete` gets when a retry completes an entity with `ending`."""
        return {}

    def log(self, level: int, step: str, outcome: str, detail: str = "") -> None:
        """One line per step: `order=o-1 step=reserve outcome=DONE detail=...`."""
        self.logger.log(level, "%s=%s step=%s outcome=%s%s", self.label, self.entity_id, step, outcome,
                        f" detail={detail}" if detail else "")
