"""`ordersaga bench` / `make bench`: sagas per second, latency, and what each process costs.

It starts a stack of its own in a temporary run directory (so a running demo is untouched),
places orders through the public gRPC API, and learns of each saga's end from the
`order-events` topic, read straight from the broker (JetStream or Kafka). Latency is from
PlaceOrder sent to the terminal lifecycle event published.

Rows, in order (`--quick`: the first two only, unless the options of the others are given):
- closed loop: one order at a time, which gives the floor;
- open loop: orders arrive at a fixed rate whatever the system does (steps such as 5, 10, 20,
  40, 80 orders/s), which exposes queueing. The highest rate, the saturated step, runs with each
  SKU spread of `--skus`: today's hot SKUs (every order takes the same three) and 1,000 SKUs of
  Zipf popularity, so inventory contention is measured. Its sagas/s is the capacity below;
- scenarios at a low rate: one-line and ten-line orders, declined payments, approvals;
- overload: `--overload` times the capacity offered; accepted, refused (RESOURCE_EXHAUSTED:
  admission control) and how fast, lost (accepted, never ended), refused orders that exist;
- growth: `--growth-minutes` at 80 % of the capacity, the stores' size every 30 s and whether it
  levelled off (finished sagas' histories purged after `--retention` seconds);
- parked (the scale row, ordersaga/bench/scale.py): orders left waiting for approval, what each
  costs (memory per process, disk) as their number grows, ListOrders at that size, an order
  beside them, then a bulk approval of all of them, drained.
- engine (after the rate steps, `--quick` too): `--engine` workflows of five no-op activities at
  once on the same stack (order-service's sidecar, store, scheduler and worker), printed with
  ordersaga's saturated step as a ratio to it; and `--closed-orders` of them one at a time, beside
  the closed loop's p50.
Per step it prints completed sagas/s, p50/p95/p99 latency, errors, CPU seconds and peak RSS of
every process, and how much the state stores grew.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from order_service.engine_bench import ENGINE_BENCH_ENV
from order_service.settings import Settings
from ordersaga.bench import counts
from ordersaga.bench.core import HEADER, SCENARIOS, Bench, StepResult, print_processes, print_step
from ordersaga.bench.engine import engine_step, ratio_line
from ordersaga.bench.growth import growth
from ordersaga.bench.overload import overload
from ordersaga.bench.scale import scale
from ordersaga.stack.layout import PROFILES, default_profile
from ordersaga.stack.stack import SIDECAR_METRICS_ENV, Stack

__all__ = ["main"]

RETENTION_ENV = "ORDERSAGA_WORKFLOW_RETENTION_S"  # the stack's purge delay for finished sagas' histories


async def run_bench(bench: Bench, args) -> None:
    scenario = SCENARIOS["no-approval"]
    # Not measured: the first orders pay for first connections, actor type placement and the
    # engine's first activations (about a second for the very first one).
    await bench.step(scenario, "warm-up", None, 5)
    print(HEADER)
    if args.only_parked:
        return await park_row(bench, args)
    closed = await bench.step(scenario, "closed loop, 3 lines", None, args.closed_orders)
    print_step(closed)
    saturated_rate = max(args.rates)
    spreads = ["hot", "zipf"] if args.skus == "both" else [args.skus]
    saturated: dict[str, StepResult] = {}
    for rate in args.rates:
        if rate != saturated_rate:
            await rate_step(bench, args, rate, "hot", label_spread=False)
            continue
        for name in spreads:
            # Today's row keeps today's label unless it stands beside its zipf twin.
            label_spread = name == "zipf" or len(spreads) > 1
            saturated[name] = await rate_step(bench, args, rate, name, label_spread)
    # The overload and growth orders take the realistic spread when it is benched.
    main_spread = "zipf" if "zipf" in saturated else "hot"
    if args.engine:
        closed_engine = await engine_step(bench, args.closed_orders, at_once=False)
        print_step(closed_engine)
        print(f"ordersaga / engine, one at a time: p50 {closed.percentile(50):.0f} against "
              f"{closed_engine.percentile(50):.0f} ms", flush=True)
        before = counts.snapshot(bench.state)
        engine = await engine_step(bench, args.engine)
        print_step(engine)
        print_processes(engine)
        print(counts.counts_line(engine.label, counts.per_saga(before, counts.snapshot(bench.state),
                                                                engine.completed)), flush=True)
        # ordersaga in the engine row's shape: the same number at once, refusals retried.
        burst = await bench.burst(SCENARIOS["no-approval"], f"ordersaga: 3 lines, {args.engine} at once",
                                  args.engine)
        print_step(burst)
        print(f"    {burst.refusal_detail}", flush=True)
        print_processes(burst)
        print(ratio_line(burst, engine), flush=True)
        print(ratio_line(saturated["hot" if "hot" in saturated else main_spread], engine), flush=True)
    if args.quick and not (args.overload or args.growth_minutes):
        return
    if not args.quick:
        for name in args.scenarios:
            rate = args.scenario_rate
            result = await bench.step(SCENARIOS[name], f"open {rate:g}/s, {name}", rate, int(rate * args.seconds))
            print_step(result)
            print_processes(result)
    if args.capacity:
        capacity, source = args.capacity, "--capacity"
    else:
        capacity, source = saturated[main_spread].rate, saturated[main_spread].label
    print(f"capacity: {capacity:.1f} sagas/s ({source})", flush=True)
    if capacity <= 0:
        print("capacity 0: no overload or growth row", flush=True)
    else:
        if args.overload:
            await overload(bench, capacity, args.overload, args.seconds, bench.spread(main_spread))
        if args.growth_minutes:
            rate = args.growth_rate or 0.8 * capacity
            spread = bench.spread(main_spread)
            print(f"growth: {args.growth_minutes:g} min at {rate:.1f}/s ({rate / capacity:.0%} of capacity), "
                  f"finished sagas' histories purged after {args.retention:g}s ({RETENTION_ENV}), "
                  f"a line every {args.growth_interval:g}s", flush=True)
            label = f"growth {args.growth_minutes:g} min, {rate:.1f}/s, {spread.label}"
            await growth(bench, rate, args.growth_minutes, args.growth_interval, spread, label)
    if args.parked and not args.quick:
        await park_row(bench, args)


async def park_row(bench: Bench, args) -> None:
    # A large row waits for the actors' idle timeout before it measures what waiting costs.
    idle_s = Settings.from_env().actor_idle_s if args.parked >= 1000 else 0
    await scale(bench, args.parked, rest_s=args.rest_seconds, idle_s=idle_s, approve=args.bulk_approval)


async def rate_step(bench: Bench, args, rate: float, spread_name: str, label_spread: bool) -> StepResult:
    spread = bench.spread(spread_name)  # before the step: stocking 1,000 SKUs is not measured
    label = f"open {rate:g}/s, 3 lines" + (f", {spread.label}" if label_spread else "")
    before = counts.snapshot(bench.state)
    result = await bench.step(SCENARIOS["no-approval"], label, rate, int(rate * args.seconds), spread=spread)
    print_step(result)
    print_processes(result)
    print(counts.counts_line(label, counts.per_saga(before, counts.snapshot(bench.state), result.completed)),
          flush=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ordersaga bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="docs/performance.md says what the rows measure and shows results.")
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20, 40, 80],
                        help="open-loop steps, orders/s; the highest is the saturated step")
    parser.add_argument("--seconds", type=float, default=10, help="length of each open-loop step and of the overload")
    parser.add_argument("--closed-orders", type=int, default=50)
    parser.add_argument("--skus", choices=["hot", "zipf", "both"], default=None,
                        help="SKU spread(s) of the saturated step: today's 3 hot SKUs, 1,000 SKUs of Zipf "
                             "popularity, or one row each (default: both; hot with --quick)")
    parser.add_argument("--scenario-rate", type=float, default=5, help="below saturation, so latency is not queueing")
    parser.add_argument("--overload", type=float, default=None, metavar="FACTOR",
                        help="offer FACTOR times the capacity for --seconds (default 4; 0 skips; "
                             "skipped with --quick unless given)")
    parser.add_argument("--capacity", type=float, default=None,
                        help="sagas/s the overload and growth rows scale by (default: the saturated step's)")
    parser.add_argument("--growth-minutes", type=float, default=None,
                        help="length of the growth row (default 10; 0 skips; skipped with --quick unless given)")
    parser.add_argument("--growth-rate", type=float, default=None, help="orders/s of the growth row "
                        "(default 80%% of the capacity)")
    parser.add_argument("--growth-interval", type=float, default=30, help="seconds between the growth row's lines")
    parser.add_argument("--retention", type=float, default=120,
                        help=f"seconds after which finished sagas' workflow histories are purged, passed to the "
                             f"bench's stack as {RETENTION_ENV} (default 120, so a 10-minute growth row levels off)")
    parser.add_argument("--parked", type=int, default=10_000,
                        help="orders left waiting for approval, then approved in bulk (0: skip)")
    parser.add_argument("--only-parked", action="store_true",
                        help="the parked row only (`make bench-scale`: 100,000 of them)")
    parser.add_argument("--bulk-approval", action=argparse.BooleanOptionalAction, default=True,
                        help="approve the parked orders in bulk at the end, and time the drain")
    parser.add_argument("--rest-seconds", type=float, default=30, help="how long to watch the parked orders idle")
    parser.add_argument("--scenarios", nargs="*", default=["fanout-1", "fanout-10", "declines-20", "approval"],
                        choices=sorted(SCENARIOS), help="scenario rows, each at --scenario-rate")
    parser.add_argument("--engine", type=int, default=50, metavar="N",
                        help="the engine row: N workflows of 5 no-op activities at once on the same stack, "
                             "printed beside the saturated step as a ratio (0 skips)")
    parser.add_argument("--quick", action="store_true",
                        help="closed loop and the rate steps only (plus overload or growth when asked for)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, stores) afterwards")
    parser.add_argument("--profile", choices=PROFILES, default=default_profile(),
                        help="embedded (SQLite, NATS) or production (PostgreSQL, Kafka)")
    parser.add_argument("--replicas", type=int, default=1, help="instances of each app, each with its own sidecar")
    args = parser.parse_args(argv)
    # The defaults that depend on --quick: a quick run is today's rows only.
    if args.skus is None:
        args.skus = "hot" if args.quick else "both"
    if args.overload is None:
        args.overload = 0 if args.quick else 4
    if args.growth_minutes is None:
        args.growth_minutes = 0 if args.quick else 10
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop and clean up as on Ctrl-C
    scratch = Path(tempfile.mkdtemp(prefix="ordersaga-bench-"))
    scratch.chmod(0o711)  # PostgreSQL runs as its own user under root and must reach its data
    run_dir = scratch / ".ordersaga"
    stack = Stack(run_dir, tie_to_parent=True, log=lambda m: print(m, file=sys.stderr, flush=True),
                  extra_env={"ORDERSAGA_APPROVAL_THRESHOLD": "1000", RETENTION_ENV: f"{args.retention:g}",
                             ENGINE_BENCH_ENV: "1", SIDECAR_METRICS_ENV: "1"})
    try:
        stack.up(profile=args.profile, replicas=args.replicas)
        print(f"ordersaga bench: {args.profile} profile, {args.replicas} replica(s) per app", flush=True)
        asyncio.run(run_bench(Bench(stack.state()), args))
    except KeyboardInterrupt:
        print("bench interrupted: stopping the stack", file=sys.stderr)
        return 130
    finally:
        stack.down()
        if args.keep:
            print(f"run directory kept: {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0
