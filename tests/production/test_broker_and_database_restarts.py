"""The Kafka broker, then PostgreSQL, killed with SIGKILL while sagas run and orders wait for
approval, then started again with their data (`up`). Nothing is lost (every order ends, every
lifecycle event is on the topic, the approvals sent after the restart land) and nothing is
doubled (the ledger and the stock match the completed orders exactly)."""

from __future__ import annotations

import time

import pytest

from tests.helpers.invariants import check_invariants
from tests.production.scenario import LARGE, SMALL, Placer, check_events, spread, wait_terminal


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", ["kafka", "postgres"])
def test_killed_and_restarted_while_sagas_run(stack, saga, ids, target, measured):
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 100)
    waiting = [ids("o") for _ in range(3)]
    for order_id in waiting:
        saga.place(order_id, customer, [(sku, 1, LARGE)])
    for order_id in waiting:
        saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=60)

    running = [ids("o") for _ in range(20)]
    placer = Placer(saga, [(order_id, customer, [(sku, 1, SMALL)]) for order_id in running])
    placer.start()
    time.sleep(1.0)  # some sagas under way, more being placed
    killed_at = time.monotonic()
    stack.kill(target)
    time.sleep(3)
    stack.up(timeout=120)  # the same data directory, the same port
    restarted = time.monotonic() - killed_at
    for order_id in waiting:
        saga.approve(order_id, approver=f"after-{target}")
    placer.join(timeout=180)
    assert not placer.errors, placer.errors

    finished = wait_terminal(saga, running + waiting, since=killed_at, bound_s=300)
    final = check_invariants(saga, {sku: 100}, running + waiting, bound_s=60)
    assert {o["status"] for o in final.values()} == {"COMPLETED"}, {k: o["status"] for k, o in final.items()}
    copies = check_events(stack, final, waited=set(waiting))
    measured(f"{target} killed and back after {restarted:.1f}s: {len(running)} sagas placed around it "
          f"({placer.refusals} placements refused while it was down, then retried), {len(waiting)} approvals "
          f"sent after it; all ended (since the kill: {spread(list(finished.values()))}); "
          f"{copies} duplicate event deliveries")
