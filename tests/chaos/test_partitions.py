"""Network partitions and connection resets on the stack's hops (ordersaga/stack/toxiproxy.py):
between a sidecar and placement, the scheduler, its store (PostgreSQL) and the broker, and
between sidecars, while orders are under way (tests/chaos/disruption.py).

- A partition holds every byte both ways for longer than the timeouts that notice it: each side
  must notice by its own timeouts and keepalives, and cope with what it had in flight never
  being answered. It heals as one that outlasted TCP's patience does: the hop's connections
  close, and both sides connect again.
- Resets: every connection on the hop that carries data is reset (TCP RST), new ones included,
  for a few seconds, then the hop heals.

Every order must end with the invariants held; the logs are searched for a line that names the
hop. `make test`: one hop of each kind on each profile, partitioned 8 s then reset for 3 s;
`make soak`: every hop of the stack, partitioned 35 s."""

from __future__ import annotations

import time

import pytest

from ordersaga.stack.toxiproxy import Toxiproxy
from tests.chaos import disruption
from tests.chaos.conftest import on_both_profiles
from tests.chaos.disruption import STEPS_OF, Disruption, app_of, live_via
from tests.helpers.verdict import Verdict

QUICK_PARTITION_S, SOAK_PARTITION_S, RESET_S = 8, 35, 3
QUICK_HOPS = {
    "embedded": ["order-service-daprd>placement", "sidecars>scheduler", "order-service-daprd>broker",
                 "peers>payment-service-daprd"],
    "production": ["order-service-daprd>placement", "sidecars>scheduler", "sidecars>broker",
                   "order-service-daprd>store", "payment-service-daprd>store", "peers>order-service-daprd"],
}


def aliases(hop: str) -> str:
    source, target = hop.split(">")
    if target == "placement":
        return "placement"
    if target == "scheduler":
        return "scheduler"
    if target == "broker":
        return "nats|jetstream|kafka|sarama|broker|pubsub|publish"
    if target == "store":
        return "postgres|pgx|sqlstate|state store|statestore|connection"
    return f"{app_of(target)}|{STEPS_OF[app_of(target)]}|no host found"  # peers>X: calls into X


def on_hop(proxies: Toxiproxy, hop: str, mode: str, seconds: float) -> Disruption:
    source, target = hop.split(">")
    sidecar = target if source == "peers" else source
    begin = (lambda: proxies.partition(hop)) if mode == "partitioned" else (lambda: proxies.reset(hop))
    return Disruption(f"{hop} {mode}", f"{hop.replace('>', '-to-')}-{mode[:4]}", begin, lambda _: proxies.heal(hop),
                      seconds, aliases(hop), via=live_via(sidecar if sidecar != "sidecars" else "order-service"))


@pytest.mark.timeout(3600)
def test_partitions_and_resets_of_every_hop(fault_stacks, tally, measured, soak):
    on_both_profiles(fault_stacks, lambda stack, client: partitions(stack, client, tally, measured, soak))


def partitions(fault_stack, fault_client, tally, measured, soak) -> list[str]:
    state = fault_stack.state()
    proxies = Toxiproxy.of(state)
    hops = sorted(proxies.proxies()) if soak else QUICK_HOPS[state.profile]
    partition_s = SOAK_PARTITION_S if soak else QUICK_PARTITION_S
    chosen = [d for hop in hops for d in (on_hop(proxies, hop, "partitioned", partition_s),
                                          on_hop(proxies, hop, "reset", RESET_S))]
    verdict = Verdict(fault_stack, fault_client, "partitions", tag=f"net-{state.profile[:4]}")
    started = time.monotonic()
    try:
        disruption.run(verdict, chosen)
    finally:
        proxies.heal_all()
    violations = verdict.check(bound_s=300)
    unnamed = sorted(name for name, named in verdict.named.items() if not named)
    tally.add(f"partitions and resets ({state.profile})", verdict, violations)
    measured(f"partitions and resets on {state.profile}: {len(hops)} hops partitioned {partition_s}s and reset "
             f"{RESET_S}s, {len(verdict.orders)} orders, {len(violations)} violations, in "
             f"{time.monotonic() - started:.0f}s; no log line named: {', '.join(unnamed) or 'none'}")
    return violations
