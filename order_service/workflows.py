"""Every workflow order-service runs, under stable names and named versions, and its activities.

A saga can wait a day for its approval, so a release always meets sagas in flight. Each one
replays its history through the version of the code it started with, so the versions of a
workflow are registered side by side, and new sagas take the latest. README, "Changing the
saga", says when a change needs a new version, when `ctx.is_patched` is enough, and when an old
version may go. The replay check (tests/replay) replays recorded histories of every version
through what this module registers, so a change that would strand sagas fails `make test`.

The composition root and the replay check both call `register`: what runs is what is checked.
"""

from __future__ import annotations

from typing import Callable

from order_service import retry_saga, saga, saga_v2
from order_service.activities import ACTIVITIES

Workflow = Callable

# Oldest first; the last one is the latest, which new instances take. Remove a version only
# once no instance of it can be in flight (README, "Changing the saga").
SAGA_VERSIONS: list[tuple[str, Workflow]] = [
    ("v1", saga.order_saga),  # announces the order itself; sagas placed before v2 run it
    ("v2", saga_v2.order_saga_v2),  # 5 activities instead of 7 (docs/performance.md)
]
RETRY_VERSIONS: list[tuple[str, Workflow]] = [
    ("v1", retry_saga.retry_saga),
]


def register(runtime, extra_saga_versions: list[tuple[str, Workflow]] = ()) -> None:
    """Register the workflow versions (and `extra_saga_versions` after them, the last of all
    the latest) and the activities on a dapr-ext-workflow `WorkflowRuntime`."""
    for name, versions in ((saga.SAGA_NAME, SAGA_VERSIONS + list(extra_saga_versions)),
                           (retry_saga.RETRY_SAGA_NAME, RETRY_VERSIONS)):
        for number, (version, workflow) in enumerate(versions, start=1):
            runtime.register_versioned_workflow(saga.stops_on_faults(workflow), name=name, version_name=version,
                                                is_latest=number == len(versions))
    for name, activity in ACTIVITIES.items():
        runtime.register_activity(activity, name=name)


def latest_saga_version() -> str:
    return SAGA_VERSIONS[-1][0]
