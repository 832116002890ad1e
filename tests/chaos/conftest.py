"""The chaos suite's stacks. The kill matrix and the duplicate-input tests use the session's
embedded stack (tests/conftest.py); the new kinds of fault (late replies, pauses, partitions and
resets, the scheduler's windows, a full disk, the kill matrix and random histories on two
replicas) run on fault stacks of their own, one per profile, started when first needed and
stopped when the chaos suite ends:

- every network hop goes through a fault proxy (ordersaga/stack/toxiproxy.py);
- the step timeout is 5 s (the session stacks' is 15 s), so a late reply, a pause or a partition
  outlasts it in seconds, and the suite stays short; the approval timeout is 10 minutes, so a
  decision delayed by a fault still arrives in time;
- the production one runs two replicas of every app, as the production tests do.

A fault that breaks a stack for good then breaks only this suite's tests, not the e2e tests'.
The figures per fault kind (faults injected, orders run, violations found) are printed in the
`measured` section at the end of the run.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import traceback
from pathlib import Path

import pytest

from ordersaga.client import SagaClient
from ordersaga.stack.stack import Stack, StackError
from tests.conftest import _MEASURED, PRODUCTION_REPLICAS, TEST_SETTINGS
from tests.helpers.verdict import EVIDENCE, Tally

STEP_TIMEOUT_S = 5
# A decision is never late here (the faults delay decisions by minutes at most): an order that
# times out at the gate is one that lost its decision.
APPROVAL_TIMEOUT_S = 600
FAULT_SETTINGS = dict(TEST_SETTINGS, ORDERSAGA_STEP_TIMEOUT_S=str(STEP_TIMEOUT_S),
                      ORDERSAGA_APPROVAL_TIMEOUT_S=str(APPROVAL_TIMEOUT_S))
PROFILES = ["embedded", "production"]
START_ATTEMPTS = 3


def _log(message: str) -> None:
    print(message, flush=True)


class FaultStacks:
    """One proxied stack per profile, started on first use."""

    def __init__(self):
        self.stacks: dict[str, Stack] = {}
        self.scratch: list[Path] = []

    def get(self, profile: str) -> Stack:
        if profile not in self.stacks:
            for attempt in range(START_ATTEMPTS):
                stack = self._new(profile)
                try:
                    stack.up(timeout=180, profile=profile, proxied=True,
                             replicas=PRODUCTION_REPLICAS if profile == "production" else 1)
                    break
                except StackError as error:
                    # Other stacks on the machine pick ports from the same range: one may take a
                    # port of ours between its pick and our start. A new stack, new ports.
                    print(f"fault stack ({profile}) did not start (attempt {attempt + 1}): {error}")
                    stack.down()
                    if attempt + 1 == START_ATTEMPTS:
                        raise
            self.stacks[profile] = stack
        return self.stacks[profile]

    def _new(self, profile: str) -> Stack:
        # PostgreSQL runs as the postgres user under root: a folder it can reach.
        scratch = Path(tempfile.mkdtemp(prefix=f"ordersaga-faults-{profile}-"))
        scratch.chmod(0o711)
        self.scratch.append(scratch)
        return Stack(scratch / ".ordersaga", tie_to_parent=True, log=_log, extra_env=FAULT_SETTINGS)

    def close(self) -> list[str]:
        """Stops every stack and removes its files; the logs of a stack where violations were
        found are kept (the folders are returned) for the evidence."""
        kept = []
        for stack in self.stacks.values():
            try:
                stack.down()
            except Exception as error:  # noqa: BLE001 - the others still go down
                print(f"stopping {stack.run_dir}: {error}")
            found = [violations for with_stack, violations in EVIDENCE if with_stack is stack]
            if found:
                keep = Path(tempfile.mkdtemp(prefix=f"ordersaga-faults-evidence-{stack.state().profile}-"))
                shutil.copytree(stack.run_dir / "logs", keep / "logs")
                (keep / "violations.txt").write_text("\n\n".join(v for vs in found for v in vs) + "\n")
                kept.append(str(keep))
        for scratch in self.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        return kept


@pytest.fixture(scope="package")
def fault_stacks(request):
    stacks = FaultStacks()
    kept = []
    try:
        yield stacks
    finally:
        kept = stacks.close()
        request.config.stash[_MEASURED].extend(f"faults: violations and the logs they came with kept in {folder}"
                                               for folder in kept)


def on_both_profiles(fault_stacks: FaultStacks, scenario) -> None:
    """`scenario(stack, client)` on each profile's fault stack at once (a thread each: the faults
    mostly wait, and two stacks wait together in half the time); it returns the violations it
    found. Fails with every profile's violations, or with the error a scenario raised."""
    stacks = {profile: fault_stacks.get(profile) for profile in PROFILES}  # started one after the other
    found: dict[str, list[str]] = {}

    def run(profile: str) -> None:
        try:
            found[profile] = scenario(stacks[profile], SagaClient(stacks[profile].state()))
        except BaseException:  # noqa: BLE001 - reported with the other profile's outcome
            found[profile] = [f"the scenario stopped with an error:\n{traceback.format_exc()}"]

    threads = [threading.Thread(target=run, args=(profile,), name=f"faults-{profile}") for profile in PROFILES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    problems = [f"[{profile}] {violation}" for profile in PROFILES for violation in found.get(profile, ["no outcome"])]
    assert not problems, "\n".join(problems)


@pytest.fixture(params=PROFILES)
def fault_stack(request, fault_stacks) -> Stack:
    """A proxied stack of each profile (the test runs once per profile)."""
    return fault_stacks.get(request.param)


@pytest.fixture()
def fault_client(fault_stack) -> SagaClient:
    return SagaClient(fault_stack.state())


@pytest.fixture(scope="package")
def tally(request):
    """Faults injected, orders run and violations found, per fault kind (printed at the end)."""
    figures = Tally()
    yield figures
    request.config.stash[_MEASURED].extend(figures.lines())


@pytest.fixture()
def soak(request) -> bool:
    return request.config.getoption("--chaos-soak")
