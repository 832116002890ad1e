"""The kill matrix (tests/chaos/test_kill_matrix.py) on the production profile with two replicas
of every app (the fault stack of tests/chaos/conftest.py: PostgreSQL, Kafka): SIGKILL of every
process, either replica's app or sidecar, the database and the broker included, at a saga step,
restarted with its data; the same checks. `make test` kills each target once, at one of the
steps in turn; `make soak` at every step, three rounds each."""

from __future__ import annotations

import pytest

from ordersaga.client import SagaClient
from tests.chaos.test_kill_matrix import STEPS, kill_at_step
from tests.helpers.verdict import EVIDENCE

TARGETS = [
    "order-service", "order-service-daprd", "order-service-2", "order-service-2-daprd",
    "inventory-service", "inventory-service-2-daprd", "payment-service", "payment-service-daprd",
    "shipping-service-2", "shipping-service-daprd", "postgres", "kafka", "scheduler", "placement",
]


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("target", TARGETS)
def test_kill_on_two_replicas(fault_stacks, ids, tally, soak, target):
    stack = fault_stacks.get("production")
    saga = SagaClient(stack.state())
    steps = STEPS if soak else [STEPS[TARGETS.index(target) % len(STEPS)]]
    orders = 0
    try:
        for step in steps:
            orders += kill_at_step(stack, saga, ids, target, step, rounds=3 if soak else 1)
    except AssertionError as violation:
        tally.count("kills on two replicas (production)", len(steps), orders + 2, 1)
        EVIDENCE.append((stack, [f"kill of {target}: {violation}"]))  # its logs are kept
        raise
    tally.count("kills on two replicas (production)", len(steps), orders, 0)
