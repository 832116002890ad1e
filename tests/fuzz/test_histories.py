"""Random histories of operations, faults and kills on the real stack (tests/fuzz/history.py),
each checked against the model. Violations are collected over all histories, each with its
seed and its operation log, and reported together at the end."""

from __future__ import annotations

import pytest

from ordersaga.client import SagaClient
from tests.fuzz.history import History

QUICK_HISTORIES, QUICK_LENGTH = 3, 15
LONG_LENGTH = 20


@pytest.mark.timeout(0)  # bounded by the profile: two short histories, or the long run's share
def test_random_histories(stack, fuzz, figures):
    client = SagaClient(stack.state())
    failed = []
    for number in fuzz.rounds("histories"):
        for index in range(1 if fuzz.long else QUICK_HISTORIES):
            history = History(stack, client, seed=fuzz.seed + 1000 * number + index,
                              length=LONG_LENGTH if fuzz.long else QUICK_LENGTH)
            found = history.run()
            figures.histories += 1
            figures.operations += history.operations
            print(f"history {history.name}: {history.operations} operations {history.counts}, "
                  f"{len(history.orders)} orders, {len(found)} violations")
            if found:
                figures.violations += len(found)
                failed.append(f"history {history.name} (seed {history.seed}):\n  " + "\n  ".join(found)
                              + "\n  operations:\n    " + "\n    ".join(history.log))
    assert not failed, "\n".join(failed)
