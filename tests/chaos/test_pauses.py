"""Pauses: each app, each sidecar, the scheduler, placement, the broker and the database
stopped with SIGSTOP while orders are under way (tests/chaos/disruption.py), and resumed with
SIGCONT after longer than the timeouts that notice it (the step timeout, placement's failure
detection, Kafka's session, the stores' operation timeout). A paused process is worse than a
dead one: its sockets stay open, so nothing fails fast, and when it wakes it carries on from
where it stopped, with calls, leases and views of the cluster that are now stale.

Every order must end with the invariants held; the logs are searched for a line that names
what was paused. `make test`: the first replica of each app and every control-plane process,
broker and database, 8 s each; `make soak`: every replica too, 35 s each (longer than
JetStream's ack wait)."""

from __future__ import annotations

import re
import time

import pytest

from ordersaga.stack import pause
from tests.chaos import disruption
from tests.chaos.conftest import on_both_profiles
from tests.chaos.disruption import STEPS_OF, Disruption, app_of, live_via
from tests.helpers.verdict import Verdict

QUICK_PAUSE_S, SOAK_PAUSE_S = 8, 35
APPS = ["order-service", "inventory-service", "payment-service", "shipping-service"]
ALIASES = {"scheduler": "scheduler", "placement": "placement", "nats": "nats|jetstream",
           "kafka": "kafka|sarama|broker", "postgres": "postgres|pgx|sqlstate|state store|statestore"}


def targets(state, soak: bool) -> list[str]:
    """What to pause: apps and sidecars (every replica in soak, the first otherwise), the
    control plane, the broker and the database (production)."""
    names = []
    for app_id in APPS:
        replicas = [n for n in state.processes if n == app_id or re.fullmatch(rf"{app_id}-\d+", n)]
        for name in sorted(replicas)[: None if soak else 1]:
            names += [name, f"{name}-daprd"]
    return names + ["scheduler", "placement"] + (["kafka", "postgres"] if state.profile == "production" else ["nats"])


def paused(stack, target: str, seconds: float) -> Disruption:
    def begin():
        record = stack.state().processes[target]
        return record, pause.pause(record, resume_after_s=seconds + 60)

    app = app_of(target)
    aliases = ALIASES.get(target) or (f"{app}|sidecar|dapr" if target.endswith("-daprd") else STEPS_OF[app])
    return Disruption(f"{target} paused", target, begin, lambda handle: pause.resume(*handle), seconds,
                      aliases, own_log=target, via=live_via(target))


@pytest.mark.timeout(3600)
def test_pauses_of_every_process(fault_stacks, tally, measured, soak):
    on_both_profiles(fault_stacks, lambda stack, client: pauses(stack, client, tally, measured, soak))


def pauses(fault_stack, fault_client, tally, measured, soak) -> list[str]:
    state = fault_stack.state()
    seconds = SOAK_PAUSE_S if soak else QUICK_PAUSE_S
    verdict = Verdict(fault_stack, fault_client, "pauses", tag=f"pause-{state.profile[:4]}")
    chosen = [paused(fault_stack, target, seconds) for target in targets(state, soak)]
    started = time.monotonic()
    disruption.run(verdict, chosen)
    violations = verdict.check(bound_s=300)
    unnamed = sorted(name for name, named in verdict.named.items() if not named)
    tally.add(f"pauses ({state.profile})", verdict, violations)
    measured(f"pauses on {state.profile}: {len(chosen)} processes paused {seconds}s each, {len(verdict.orders)} "
             f"orders, {len(violations)} violations, in {time.monotonic() - started:.0f}s; no log line named: "
             f"{', '.join(unnamed) or 'none'}")
    return violations
