"""The scheduler killed in the windows where Dapr 1.18.3 is known to lose a workflow (fixed in
1.18.4, which the Go module proxy does not serve): while sagas are being started, and while
placement moves actors (a sidecar of order-service leaving and coming back). A saga left PENDING
there would leave its order PLACED for good, with nothing to notice: every order must end.

A regression test, on both profiles: `make test` kills it once into a burst of placements,
`make soak` at six offsets into six bursts, and three rounds of the actors' moves."""

from __future__ import annotations

import threading
import time

import pytest

from tests.chaos.conftest import on_both_profiles
from tests.helpers.verdict import Verdict

SMALL = 1_000
BURST = 8
QUICK_OFFSETS, SOAK_OFFSETS = [0.2], [0.0, 0.1, 0.25, 0.4, 0.7, 1.0]


def burst(verdict: Verdict, name: str, note: str) -> threading.Thread:
    """Places BURST orders from as many threads at once (each retried while the stack cannot take it)."""
    orders = [verdict.order(f"{name}-{n}", [(1, SMALL)], note=note, allowed={"COMPLETED"}) for n in range(BURST)]
    threads = [threading.Thread(target=verdict.place, args=(order,)) for order in orders]
    runner = threading.Thread(target=lambda: [t.start() for t in threads] + [t.join() for t in threads])
    runner.start()
    return runner


@pytest.mark.timeout(1800)
def test_the_scheduler_killed_while_sagas_start(fault_stacks, tally, measured, soak):
    on_both_profiles(fault_stacks, lambda stack, client: kills_while_sagas_start(stack, client, tally, measured, soak))


def kills_while_sagas_start(fault_stack, fault_client, tally, measured, soak) -> list[str]:
    profile = fault_stack.state().profile
    verdict = Verdict(fault_stack, fault_client, "scheduler windows", tag=f"sched-{profile[:4]}")
    started = time.monotonic()
    for offset in SOAK_OFFSETS if soak else QUICK_OFFSETS:
        placing = burst(verdict, f"start-{offset:g}", f"placed as the scheduler was killed ({offset:g}s in)")
        time.sleep(offset)
        fault_stack.kill("scheduler")
        verdict.fault(f"scheduler killed {offset:g}s into a burst of {BURST} placements")
        time.sleep(1)
        fault_stack.up(timeout=120)
        placing.join(timeout=300)
    violations = verdict.check(bound_s=300)
    tally.add(f"scheduler windows ({profile})", verdict, violations)
    measured(f"scheduler killed while sagas start on {profile}: {len(verdict.faults)} kills, {len(verdict.orders)} "
             f"orders, {len(violations)} violations, in {time.monotonic() - started:.0f}s")
    return violations


@pytest.mark.timeout(1800)
def test_the_scheduler_killed_while_placement_moves_actors(fault_stacks, tally, measured, soak):
    on_both_profiles(fault_stacks, lambda stack, client: kills_while_actors_move(stack, client, tally, measured, soak))


def kills_while_actors_move(fault_stack, fault_client, tally, measured, soak) -> list[str]:
    """Production: order-service's second replica (app and sidecar) dies and comes back, so
    placement moves the orders' and the workflows' actors twice, and the scheduler dies each
    time. Embedded (one replica): order-service's sidecar dies and comes back, with the same."""
    state = fault_stack.state()
    leaving = ["order-service-2", "order-service-2-daprd"] if state.profile == "production" else ["order-service-daprd"]
    verdict = Verdict(fault_stack, fault_client, "scheduler windows", tag=f"move-{state.profile[:4]}")
    started = time.monotonic()
    for round_number in range(3 if soak else 1):
        placing = burst(verdict, f"leave-{round_number}", f"placed as {leaving[-1]} left and the scheduler died")
        time.sleep(0.3)
        for name in leaving + ["scheduler"]:
            fault_stack.kill(name)
        verdict.fault(f"{' and '.join(leaving)} killed with the scheduler (actors move away)")
        time.sleep(2)
        fault_stack.up(timeout=120)  # the sidecar back: placement moves actors again
        returning = burst(verdict, f"back-{round_number}", f"placed as {leaving[-1]} came back and the scheduler died")
        time.sleep(0.5)
        fault_stack.kill("scheduler")
        verdict.fault(f"scheduler killed as {leaving[-1]} came back (actors move back)")
        time.sleep(1)
        fault_stack.up(timeout=120)
        placing.join(timeout=300)
        returning.join(timeout=300)
    violations = verdict.check(bound_s=300)
    tally.add(f"scheduler windows ({state.profile})", verdict, violations)
    measured(f"scheduler killed while placement moves actors on {state.profile}: {len(verdict.faults)} faults, "
             f"{len(verdict.orders)} orders, {len(violations)} violations, in {time.monotonic() - started:.0f}s")
    return violations
