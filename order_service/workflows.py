"""Every workflow order-service runs, under stable names and named versions, and its activities.

A saga can wait a day for its approval, so a release always meets sagas in flight. Each one
replays its history through the version of the code it started with, so the versions of a
workflow are registered side by side, and new sagas take the latest. docs/changing-the-saga.md
says when a change needs a new version, when `ctx.is_patched` is enough, and when an old
version may go. The replay check (tests/replay) replays recorded histories of every version
through what this module registers, so a change that would strand sagas fails `make test`.

The composition root, the replay check and the saga's unit tests (on dapr_saga's harness) all
call `register`: what runs is what is checked.
"""

from __future__ import annotations

from typing import Callable

import dapr_saga

from order_service import bulk
from order_service.activities import ACTIVITIES
from order_service.sagas import DECIDED_SAGA_NAME, RETRY_SAGA_NAME, SAGA_NAME, bulk_v1, decided_v1, retry_v1, v1, v2, v3

# Oldest first; the last one is the latest, which new instances take. Remove a version only
# once no instance of it can be in flight (docs/changing-the-saga.md).
ORDER_SAGA = dapr_saga.Workflow(SAGA_NAME, [
    ("v1", v1.order_saga),  # announces the order itself; sagas placed before v2 run it
    ("v2", v2.order_saga_v2),  # 5 activities instead of 7 (docs/performance.md)
    ("v3", v3.order_saga_v3),  # parks at the approval gate: nothing waits in the engine
])
# A parked order's second half, started by its decision (or timeout, or cancel): v3's rest.
DECIDED_SAGA = dapr_saga.Workflow(DECIDED_SAGA_NAME, [
    ("v1", decided_v1.decided_saga),
])
RETRY_SAGA = dapr_saga.Workflow(RETRY_SAGA_NAME, [
    ("v1", retry_v1.retry_saga),
])


# Operations on many orders at once (order_service/bulk.py).
BULK_ACTION = dapr_saga.Workflow(bulk.BULK_WORKFLOW, [
    ("v1", bulk_v1.bulk_action),
])


def register(runtime, extra_saga_versions: list[tuple[str, Callable]] = ()) -> None:
    """Register the workflow versions (and `extra_saga_versions` after them, the last of all
    the latest) and the activities on a dapr-ext-workflow `WorkflowRuntime`."""
    dapr_saga.register(runtime, [ORDER_SAGA.plus(extra_saga_versions), RETRY_SAGA, DECIDED_SAGA, BULK_ACTION],
                       {**ACTIVITIES, **bulk.ACTIVITIES})


def latest_saga_version(extra_saga_versions: list[tuple[str, Callable]] = ()) -> str:
    """The version new orders' sagas take (with `extra_saga_versions`, the last of them)."""
    return ORDER_SAGA.plus(extra_saga_versions).latest
