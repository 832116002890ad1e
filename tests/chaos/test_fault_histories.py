"""Random histories (tests/fuzz/history.py) with the new kinds of fault mixed in: late replies
to a step or an undo, processes frozen, hops partitioned or resetting, beside kills, errors and
delays, decisions, cancels and repeats; on the proxied fault stacks of both profiles (the
production one with two replicas). Each history is checked against the model; its seed replays
it (`--fuzz-seed`). `make test`: one history per profile; `make soak`: three, longer."""

from __future__ import annotations

import random
import time

import pytest

from ordersaga.client import SagaClient
from tests.chaos.conftest import APPROVAL_TIMEOUT_S, STEP_TIMEOUT_S
from tests.fuzz.history import FAULT_KIND_WEIGHTS, History

QUICK, SOAK = (1, 14), (3, 20)  # (histories, operations each)
FAULTS = {"fault", "kill", "late", "freeze", "partition", "reset"}
SEED = 20261201


@pytest.mark.timeout(0)  # bounded by its operations; each waits with its own bounds
def test_random_histories_with_every_kind_of_fault(fault_stack, tally, measured, soak, request):
    profile = fault_stack.state().profile
    chosen = request.config.getoption("--fuzz-seed")
    seed = chosen if chosen is not None else (random.SystemRandom().randrange(2**32) if soak else SEED)
    client = SagaClient(fault_stack.state())
    histories, length = SOAK if soak else QUICK
    failed = []
    started = time.monotonic()
    for index in range(histories):
        history = History(fault_stack, client, seed=seed + index + (0 if profile == "embedded" else 500), length=length,
                          fault_kinds=True, approval_timeout_s=APPROVAL_TIMEOUT_S, step_timeout_s=STEP_TIMEOUT_S)
        found = history.run()
        faults = sum(n for op, n in history.counts.items() if op in FAULTS)
        tally.count(f"random histories ({profile})", faults, len(history.orders), len(found))
        for kind in FAULT_KIND_WEIGHTS:
            history.counts.setdefault(kind, 0)
        print(f"history {history.name} on {profile}: {history.operations} operations {history.counts}, "
              f"{len(history.orders)} orders, {len(found)} violations")
        if found:
            failed.append(f"history {history.name} (seed {history.seed}, replay with --fuzz-seed {seed}):\n  "
                          + "\n  ".join(found) + "\n  operations:\n    " + "\n    ".join(history.log))
    measured(f"random histories with every kind of fault on {profile}: {histories} x {length} operations from seed "
             f"{seed}, {len(failed)} with violations, in {time.monotonic() - started:.0f}s")
    assert not failed, "\n".join(failed)
