"""Stable registration names with versions.

A saga may wait a day for a person, so every release meets sagas in flight, and each replays its
history through the code it started with. So a workflow is registered under a stable name with
its versions side by side (oldest first, the last one the latest, which new instances take), and
activities under stable names: renaming a Python function must never break a replay.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

from dapr_saga.saga import saga_workflow

# What dapr-ext-workflow marks a registered function with; a fresh wrapper must not inherit it,
# or a second registration in the same process (tests, a replay check) is refused.
_REGISTRATION_MARKS = ("_workflow_registered", "_activity_registered", "_dapr_alternate_name")


@dataclass(frozen=True)
class Workflow:
    """A workflow's stable name and its versions, oldest first: [(version name, function), ...]."""

    name: str
    versions: list[tuple[str, Callable]] = field(default_factory=list)

    def plus(self, more: list[tuple[str, Callable]]) -> "Workflow":
        """These versions and `more` after them (newer: the last of all is the latest)."""
        return Workflow(self.name, list(self.versions) + list(more))

    @property
    def latest(self) -> str:
        return self.versions[-1][0]


def register(runtime, workflows: list[Workflow], activities: dict[str, Callable]) -> None:
    """Register every version of `workflows` (each wrapped by `saga_workflow`) and `activities`
    (by their names) on a dapr-ext-workflow `WorkflowRuntime`. Safe to call more than once per
    process: each registration gets a wrapper of its own."""
    for workflow in workflows:
        for number, (version, fn) in enumerate(workflow.versions, start=1):
            runtime.register_versioned_workflow(unmarked(saga_workflow(fn)), name=workflow.name,
                                                version_name=version, is_latest=number == len(workflow.versions))
    for name, activity in activities.items():
        runtime.register_activity(fresh(activity), name=name)


def fresh(fn: Callable) -> Callable:
    """A wrapper of `fn` the SDK has not seen: same signature, annotations and async-ness."""
    if inspect.iscoroutinefunction(fn):
        async def wrapper(*args, **kwargs):
            return await fn(*args, **kwargs)
    else:
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
    return unmarked(functools.update_wrapper(wrapper, fn))


def unmarked(wrapper: Callable) -> Callable:
    for mark in _REGISTRATION_MARKS:
        wrapper.__dict__.pop(mark, None)
    return wrapper
