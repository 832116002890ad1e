"""The overload row: several times the measured capacity offered at once.

With admission control, PlaceOrder refuses what it cannot take with `RESOURCE_EXHAUSTED`, at
once, and the orders it accepts keep a bounded latency; without it, every call waits behind the
backlog. The row prints what was refused and how fast, what was accepted and how long those
orders took, and checks the two promises: no accepted order is lost (every one ends within the
drain time), and no refused order exists afterwards.
"""

from __future__ import annotations

from ordersaga.bench.core import SCENARIOS, Bench, StepResult, lookup, print_processes, print_step
from ordersaga.bench.spread import HotSkus, ZipfSkus

REFUSAL_TARGET_MS = 100  # issue 12: a refusal comes back within 100 ms
ACCEPTED_P95_TARGET_MS = 2000  # issue 12: at 4x capacity the accepted orders keep p95 < 2 s
REFUSED_CHECKED = 20  # refused ids looked up afterwards with GetOrder


def percentile_ms(values_ms: list[float], p: float) -> float:
    """The p-th percentile (nearest rank, as StepResult.percentile) of values already in ms."""
    if not values_ms:
        return float("nan")
    ordered = sorted(values_ms)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def overload(bench: Bench, capacity: float, factor: float, seconds: float, spread: HotSkus | ZipfSkus,
                   drain_s: float = 300) -> StepResult:
    rate = factor * capacity
    label = f"overload {factor:g}x, {spread.label}"
    result = await bench.step(SCENARIOS["no-approval"], label, rate, max(1, int(rate * seconds)), drain_s=drain_s,
                              spread=spread)
    print_step(result)
    print_processes(result)
    existing = await refused_that_exist(bench, result.refused[:REFUSED_CHECKED])
    print(overload_summary(result, capacity, rate, seconds, existing, min(len(result.refused), REFUSED_CHECKED)),
          flush=True)
    return result


def overload_summary(result: StepResult, capacity: float, rate: float, seconds: float, existing: list[str],
                     checked: int) -> str:
    """The overload row's detail lines (pure, from the step's figures)."""
    refused = len(result.refused)
    other = sum(n for code, n in result.error_codes.items() if code != "RESOURCE_EXHAUSTED")
    other_codes = ", ".join(f"{code} {n}" for code, n in result.error_codes.most_common()
                            if code != "RESOURCE_EXHAUSTED")
    # Lost: PlaceOrder said yes and the saga never ended. A call that failed otherwise (a
    # timeout) may or may not have created its order: those are counted apart.
    lost = [order_id for order_id in result.accepted if order_id not in result.ended]
    ended_anyway = sum(order_id in result.ended for order_id in result.failed)
    accepted = [result.ended[order_id] * 1000 for order_id in result.accepted if order_id in result.ended]
    p95 = percentile_ms(accepted, 95)
    lines = [
        f"    overload: {rate:.1f}/s offered for {seconds:g}s ({rate / capacity:.1f}x capacity {capacity:.1f}/s): "
        f"{result.offered} offered, {len(result.accepted)} accepted, {refused} refused (RESOURCE_EXHAUSTED), "
        f"{other} other errors" + (f" ({other_codes}; {ended_anyway} of them ended anyway, "
                                   f"{len(result.never_created)} not found afterwards)" if other else ""),
        f"    overload: accepted orders: {len(result.accepted) - len(lost)} ended, "
        f"p50 {percentile_ms(accepted, 50):.0f} ms, p95 {p95:.0f} ms "
        f"(target < {ACCEPTED_P95_TARGET_MS} ms: {'met' if p95 < ACCEPTED_P95_TARGET_MS else 'NOT met'}); "
        f"lost (accepted, never ended) {len(lost)}"
        + (f" (must be 0): {', '.join(lost[:5])}" if lost else ""),
    ]
    if refused:
        slowest = max(result.refusal_ms)
        lines.append(
            f"    overload: refusals came back in p50 {percentile_ms(result.refusal_ms, 50):.0f} ms, "
            f"p95 {percentile_ms(result.refusal_ms, 95):.0f} ms, max {slowest:.0f} ms "
            f"(target {REFUSAL_TARGET_MS} ms: {'met' if slowest <= REFUSAL_TARGET_MS else 'NOT met'}); "
            f"refused orders that exist: {len(existing)} of {checked} checked"
            + (f" ({', '.join(existing[:5])})" if existing else "")
            + (f"; hint: {result.refusal_detail[:120]!r}" if result.refusal_detail else ""))
    else:
        lines.append("    overload: nothing refused (no admission control answered RESOURCE_EXHAUSTED)")
    return "\n".join(lines)


async def refused_that_exist(bench: Bench, order_ids: list[str]) -> list[str]:
    """The refused orders GetOrder does not answer NOT_FOUND for (a refused order must not have
    been created); an answer other than found shows with its code, reported rather than hidden."""
    channel, stub, metadata = bench.order_api()
    try:
        answers = await lookup(stub, metadata, order_ids)
    finally:
        await channel.close()
    return [order_id if answer == "found" else f"{order_id} ({answer})"
            for order_id, answer in answers.items() if answer != "NOT_FOUND"]
