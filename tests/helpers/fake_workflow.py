"""A tiny in-process stand-in for the durable task runtime, to unit-test the saga's decisions.

It runs the real `order_saga` generator with the SDK's real task objects (when_any, when_all,
CompletableTask), completing activities from a scripted "world" and firing timers on a
virtual clock when nothing else can happen. Retries, persistence and replay are the real
runtime's business and are covered by the e2e tests; this covers what the saga decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from dapr.ext.workflow._durabletask import task
from dapr.ext.workflow._durabletask.internal import protos as pb

from order_service.saga import stops_on_faults

HANG = object()  # a world function returns this for a call that never answers


@dataclass
class Started:
    name: str
    input: Any
    task: task.CompletableTask
    hung: bool = False


@dataclass
class FakeContext:
    world: dict[str, Callable[[Any], Any]]
    events: dict[str, list[Any]] = field(default_factory=dict)  # delivered when the saga is idle
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))
    instance_id: str = "order-saga-test"
    is_replaying: bool = False
    calls: list[Started] = field(default_factory=list)
    timers: list[tuple[datetime, task.TimerTask]] = field(default_factory=list)
    waiting: dict[str, list[task.CompletableTask]] = field(default_factory=dict)
    unpatched: set[str] = field(default_factory=set)  # patches a saga started before them lacks
    patches: list[str] = field(default_factory=list)  # asked for, in order
    custom_status: str = ""

    # -- the context API the saga uses -------------------------------------------------------

    def call_activity(self, name: str, *, input: Any = None, retry_policy=None) -> task.CompletableTask:
        started = Started(name, input, task.CompletableTask())
        self.calls.append(started)
        return started.task

    def create_timer(self, fire_at: timedelta) -> task.TimerTask:
        timer = task.TimerTask()
        self.timers.append((self.now + fire_at, timer))
        return timer

    def is_patched(self, name: str) -> bool:
        self.patches.append(name)
        return name not in self.unpatched

    def set_custom_status(self, status: str) -> None:
        self.custom_status = status

    def wait_for_external_event(self, name: str) -> task.CompletableTask:
        waiter = task.CompletableTask()
        self.waiting.setdefault(name, []).append(waiter)
        return waiter

    # -- driving -------------------------------------------------------------------------------

    def activity_names(self) -> list[str]:
        """The business activities started, in order (bookkeeping updates left out)."""
        return [c.name for c in self.calls if c.name != "update_order"]

    def updates(self) -> list[Any]:
        """Every update sent to the actor: by update_order, by a gated step before it acts, or
        by a last step once it is done (saga v2's finish_order: counted if it succeeded)."""
        updates = []
        for c in self.calls:
            if c.name == "update_order":
                updates.append(c.input)
            elif getattr(c.input, "enter", None):
                updates.append(c.input.enter)
            elif c.name == "finish_order" and c.task.is_complete and not c.task.is_failed:
                updates.append(c.input.complete)
        return updates

    def records(self) -> list[Any]:
        """Every timeline entry sent to the actor, in order."""
        return [record for update in self.updates() for record in update.records]

    def timeline(self) -> list[tuple[str, str]]:
        return [(r.step, r.outcome) for r in self.records()]

    def published(self) -> list[str]:
        return [u.event.type for u in self.updates() if u.event]

    def _advance(self) -> bool:
        """Make one thing happen: an answer, else an event, else the earliest timer."""
        for started in self.calls:
            if started.task.is_complete or started.hung:
                continue
            try:
                result = self.world[started.name](started.input)
            except Exception as error:  # a technical failure after the runtime's retries
                started.task.fail(str(error), pb.TaskFailureDetails(errorType=type(error).__name__,
                                                                    errorMessage=str(error)))
                return True
            if result is HANG:
                started.hung = True
                continue
            started.task.complete(result.model_dump(mode="json") if hasattr(result, "model_dump") else result)
            return True
        for name, payloads in self.events.items():
            pending = [w for w in self.waiting.get(name, []) if not w.is_complete]
            if payloads and pending:
                pending[0].complete(payloads.pop(0))
                return True
        pending_timers = sorted((t for t in self.timers if not t[1].is_complete), key=lambda t: t[0])
        if pending_timers:
            self.now, timer = pending_timers[0]
            timer.complete(None)
            return True
        return False


def run_saga(saga_fn, saga_input, ctx: FakeContext):
    """Drive the saga to its end; its return value. Wrapped as order_service.workflows
    registers it."""
    generator = stops_on_faults(saga_fn)(ctx, saga_input)
    to_send, to_throw = None, None
    while True:
        try:
            awaited = generator.throw(to_throw) if to_throw else generator.send(to_send)
        except StopIteration as stop:
            return stop.value
        while not awaited.is_complete:
            if not ctx._advance():
                raise AssertionError("the saga waits for something that can never happen")
        to_send, to_throw = None, None
        if awaited.is_failed:
            to_throw = awaited.get_exception()
        else:
            to_send = awaited.get_result()
