"""The fuzz profiles: how long, with which seed, and the figures printed at the end.

Quick (inside `make test`): each test runs one bounded round of examples or histories.
Long (`make fuzz FUZZ_MINUTES=30`, i.e. `--fuzz-minutes 30`): each test runs rounds until its
share of the time is used. Every round is seeded from one session seed, printed in the summary
with the command that replays it (`--fuzz-seed N`). Hypothesis keeps the failures it found in
its example database (`.hypothesis/`, not in git) and tries them first the next time.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, seed, settings

from tests.conftest import _MEASURED

# Each test's share of a long run's time: the histories are what costs and finds the most.
SHARES = {"grpc": 0.2, "cli": 0.1, "events": 0.15, "histories": 0.55}


@dataclass
class Figures:
    inputs: int = 0
    histories: int = 0
    operations: int = 0
    violations: int = 0

    def counting(self, test):
        """Counts the examples `test` (under @given) is called with: the inputs tried."""
        @functools.wraps(test)
        def counted(*args, **kwargs):
            self.inputs += 1
            return test(*args, **kwargs)
        return counted

    def line(self) -> str:
        return (f"{self.inputs} inputs tried, {self.histories} histories run, {self.operations} operations, "
                f"{self.violations} violations")


@dataclass
class Fuzz:
    seed: int
    minutes: float  # 0: the quick profile
    totals: Figures = field(default_factory=Figures)
    started: float = field(default_factory=time.monotonic)

    @property
    def long(self) -> bool:
        return self.minutes > 0

    def rounds(self, share: str, parts: int = 1):
        """Round numbers: one in the quick profile, as many as fit in the test's share of a long
        run (`parts`: how many tests split that share)."""
        until = time.monotonic() + self.minutes * 60 * SHARES[share] / parts
        number = 0
        while True:
            yield number
            number += 1
            if not self.long or time.monotonic() >= until:
                return

    def explore(self, make_test, examples: int, round_number: int = 0, shrink: bool = True):
        """One seeded round of `examples` examples of the @given function `make_test()` returns
        (made anew each round: Hypothesis takes settings and a seed once per function). Network
        calls make examples slow and their timing uneven, so no per-example deadline; a hang is
        caught by the gRPC deadlines the tests set and pytest-timeout."""
        phases = tuple(Phase) if shrink else tuple(p for p in Phase if p != Phase.shrink)
        chosen = settings(max_examples=examples, deadline=None, derandomize=False, print_blob=True, phases=phases,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
        return seed(self.seed + round_number)(chosen(make_test()))()


QUICK_SEED = 20261123


@pytest.fixture(scope="session")
def fuzz(request) -> Fuzz:
    config = request.config
    chosen = config.getoption("--fuzz-seed")
    minutes = config.getoption("--fuzz-minutes")
    if chosen is None:
        # The quick profile in `make test` replays the same inputs every run, so CI is
        # reproducible; the long profile (`make fuzz`) explores a new seed each time.
        chosen = random.SystemRandom().randrange(2**32) if minutes else QUICK_SEED
    run = Fuzz(seed=chosen, minutes=minutes)
    yield run
    profile = f"long profile ({run.minutes:g} min)" if run.long else "quick profile"
    config.stash[_MEASURED].append(
        f"fuzz {profile}: seed {run.seed} (replay: --fuzz-seed {run.seed}): {run.totals.line()} "
        f"in {time.monotonic() - run.started:.0f} s")


@pytest.fixture()
def figures(fuzz, measured):
    """A test's own figures, added to the session totals and printed with `measured`."""
    mine = Figures()
    started = time.monotonic()
    yield mine
    for name in ("inputs", "histories", "operations", "violations"):
        setattr(fuzz.totals, name, getattr(fuzz.totals, name) + getattr(mine, name))
    measured(f"seed {fuzz.seed}: {mine.line()} in {time.monotonic() - started:.0f} s")
