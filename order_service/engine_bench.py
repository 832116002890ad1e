"""The bare engine, for the bench's engine row (ordersaga/bench/engine.py): a workflow of five
no-op activities, run by order-service's own workflow worker on its own sidecar, store and
scheduler, so ordersaga's figures read as a ratio to what the engine alone does on the same
stack build. Registered only where ENGINE_BENCH_ENV is "1" (the bench's stack): it is no part of
the shop, and no recording of it is replayed.
"""

from __future__ import annotations

ENGINE_BENCH_ENV = "ORDERSAGA_ENGINE_BENCH"
WORKFLOW_NAME = "engine_bench"
ACTIVITY_NAME = "engine_noop"
STEPS = 5  # the saga's activities without approval (saga v2)


def engine_bench(ctx, data):
    for step in range(STEPS):
        data = yield ctx.call_activity(ACTIVITY_NAME, input=data)
    return data


async def engine_noop(ctx, data):
    return data


def register(runtime) -> None:
    runtime.register_workflow(engine_bench, name=WORKFLOW_NAME)
    runtime.register_activity(engine_noop, name=ACTIVITY_NAME)
