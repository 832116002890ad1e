"""The order saga's workflows: code that is replayed.

Every module here runs inside a workflow, again on every step, from the workflow's history: no
I/O, no clocks, no environment, no clients; every side effect is an activity
(order_service/activities.py), called by its registered name. A saga in flight replays its
history through the version it started with, so each version (v1.py, v2.py, and the retry's
retry_v1.py) carries its own frozen parts: its steps, its retry policies, its patches. Change a
version only behind `ctx.is_patched`; a new shape is a new version (docs/changing-the-saga.md).
The runner they share is the dapr_saga kit; timeline.py only shapes the order's messages.
"""

# The saga's workflow names and the events it waits for: the actor starts and raises them.
SAGA_NAME = "order_saga"
RETRY_SAGA_NAME = "order_saga_retry"
DECIDED_SAGA_NAME = "order_saga_decided"  # a parked order's second half (v3 parks at the approval gate)
APPROVAL_EVENT = "approval"
CANCEL_EVENT = "cancel"
# The versions of the order saga that park at the approval gate (end their workflow there): a
# decision for their orders is not raised into a workflow, it starts DECIDED_SAGA_NAME.
PARKING_VERSIONS = frozenset({"v3"})
