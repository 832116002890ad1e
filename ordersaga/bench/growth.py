"""The growth row: a long open loop below capacity, and what the stores hold over time.

Every saga leaves its workflow history behind unless the workflow engine purges finished ones
(Dapr's `stateRetentionPolicy`; the bench passes its `--retention` to its stack). With purging,
the stores should level off once the first histories are purged (SQLite reuses the freed pages;
the files do not shrink), and keep growing only by what stays for good (the orders and their
timelines on the actors). The row prints, every interval, the orders ended so far, the
stores' size and (SQLite) the bytes of the workflow engine's rows, the part retention purges,
then whether each size levelled off: its growth over the last third of the run
against its growth over the first third.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ordersaga.bench.core import (
    SCENARIOS,
    Bench,
    StepResult,
    Usage,
    db_file_bytes,
    print_processes,
    print_step,
    store_bytes,
    workflow_state_bytes,
)
from ordersaga.bench.spread import HotSkus, ZipfSkus

LEVELLED = 0.25  # the last third grew at most a quarter as much as the first: levelled off
SLOWING = 0.6  # at most this share: slowing down, not level


@dataclass
class Sample:
    elapsed: float  # seconds since the first order
    ended: int  # orders of the run that ended so far
    store: int  # store_bytes: SQLite files with their WAL, or the PostgreSQL databases
    db_files: int | None  # SQLite's main files only (None for PostgreSQL)
    workflows: int | None = None  # the workflow engine's rows, what retention purges (SQLite only)


def interpolate(points: list[tuple[float, float]], t: float) -> float:
    """The value at `t` on the straight lines between `points` (sorted by time)."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def thirds(points: list[tuple[float, float]]) -> tuple[float, float]:
    """How much the value grew over the first third of the time and over the last third."""
    start, end = points[0][0], points[-1][0]
    third = (end - start) / 3
    first = interpolate(points, start + third) - interpolate(points, start)
    last = interpolate(points, end) - interpolate(points, end - third)
    return first, last


def levelling(points: list[tuple[float, float]]) -> tuple[float, float, str]:
    """(growth over the first third, over the last third, verdict) of a size over time."""
    if len(points) < 4:
        return float("nan"), float("nan"), "too few samples to tell"
    first, last = thirds(points)
    if first <= 0:
        verdict = "level throughout" if last <= 0 else "still growing (and not at first)"
    elif last <= LEVELLED * first:
        verdict = f"levelled off (last third {last / first:.0%} of the first)"
    elif last <= SLOWING * first:
        verdict = f"slowing, not level (last third {last / first:.0%} of the first)"
    else:
        verdict = f"still growing (last third {last / first:.0%} of the first)"
    return first, last, verdict


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def sample_line(sample: Sample, previous: Sample, in_flight: int) -> str:
    interval = sample.elapsed - previous.elapsed
    rate = (sample.ended - previous.ended) / interval if interval > 0 else 0.0
    files = f" (db files without WAL {_mb(sample.db_files)})" if sample.db_files is not None else ""
    workflows = f", workflow rows {_mb(sample.workflows)}" if sample.workflows is not None else ""
    return (f"    growth {_clock(sample.elapsed)}: {sample.ended} ended, {in_flight} in flight, "
            f"store {_mb(sample.store)}{files}{workflows}, last {interval:.0f}s {rate:.1f} sagas/s")


def summary_lines(samples: list[Sample]) -> list[str]:
    """Per size series, its growth over the first and last thirds, per saga ended, and the verdict."""
    ended = [(s.elapsed, s.ended) for s in samples]
    series = [("store", [(s.elapsed, s.store) for s in samples])]
    if samples[0].db_files is not None:
        series.append(("db files without WAL", [(s.elapsed, s.db_files) for s in samples]))
    if samples[0].workflows is not None:
        series.append(("workflow rows", [(s.elapsed, s.workflows) for s in samples]))
    lines = []
    for name, points in series:
        first, last, verdict = levelling(points)
        if len(points) < 4:
            lines.append(f"    growth, {name}: {verdict}")
            continue
        ended_first, ended_last = thirds(ended)
        per_saga = (f" ({first / 1024 / max(ended_first, 1):.1f} and {last / 1024 / max(ended_last, 1):.1f} KB"
                    " per saga ended)")
        lines.append(f"    growth, {name}: {_mb(points[0][1])} -> {_mb(points[-1][1])}; first third "
                     f"+{_mb(first)}, last third +{_mb(last)}{per_saga}: {verdict}")
    return lines


async def growth(bench: Bench, rate: float, minutes: float, interval_s: float, spread: HotSkus | ZipfSkus,
                 label: str, drain_s: float = 300) -> list[Sample]:
    """`rate` orders/s for `minutes`, a sample of the stores every `interval_s`; then the drain,
    and the row with the run's latency and cost."""
    channel, stub, metadata = bench.order_api()
    usage = Usage.now(bench.state)
    duration = minutes * 60
    result = StepResult(label, offered=0)
    stop = asyncio.Event()
    listener = asyncio.create_task(bench._listen(stop))
    await asyncio.sleep(0.5)
    bench.steps += 1
    step = bench.steps
    rng = spread.rng()
    ids: list[str] = []

    async def measure(elapsed: float) -> Sample:
        # In a thread: PostgreSQL's size is a query, and the loop must keep placing orders.
        store, files, workflows = await asyncio.gather(asyncio.to_thread(store_bytes, bench.state),
                                                       asyncio.to_thread(db_file_bytes, bench.state),
                                                       asyncio.to_thread(workflow_state_bytes, bench.state))
        return Sample(elapsed, sum(order_id in bench.done for order_id in ids), store, files, workflows)

    samples = [await measure(0.0)]
    files = f" (db files without WAL {_mb(samples[0].db_files)})" if samples[0].db_files is not None else ""
    print(f"    growth 0:00: store {_mb(samples[0].store)}{files}", flush=True)
    started = time.monotonic()
    placing: set[asyncio.Task] = set()
    next_sample = interval_s
    n = 0
    while (elapsed := time.monotonic() - started) < duration:
        if elapsed >= next_sample:
            sample = await measure(elapsed)
            in_flight = len(result.accepted) + len(result.failed) - sample.ended
            print(sample_line(sample, samples[-1], in_flight), flush=True)
            samples.append(sample)
            next_sample += interval_s
            continue
        due = started + n / rate
        if due > time.monotonic():
            await asyncio.sleep(min(due, started + next_sample) - time.monotonic())
            continue
        request = bench._order(SCENARIOS["no-approval"], step, n, spread, rng)
        ids.append(request.order_id)
        task = asyncio.create_task(bench.place(stub, metadata, request, result))
        placing.add(task)
        task.add_done_callback(placing.discard)  # keep only the calls still open
        n += 1
    sample = await measure(time.monotonic() - started)  # the end of the load: the last point
    if sample.elapsed - samples[-1].elapsed >= 1:
        print(sample_line(sample, samples[-1], len(result.accepted) + len(result.failed) - sample.ended), flush=True)
        samples.append(sample)
    if placing:
        await asyncio.gather(*placing)

    await bench.drain(result, stub, metadata, started, drain_s)
    result.offered = len(ids)
    stop.set()
    await listener
    await channel.close()
    bench.tally(result, ids, started, usage)
    print_step(result)
    print_processes(result)
    lost = [order_id for order_id in result.accepted if order_id not in result.ended]
    print(f"    growth: {len(ids)} offered over {_clock(duration)} at {rate:.1f}/s, {len(result.accepted)} accepted, "
          f"{len(result.refused)} refused, {len(result.failed)} other errors; lost (accepted, not ended within "
          f"{drain_s:.0f}s of the end) {len(lost)}", flush=True)
    for line in summary_lines(samples):
        print(line, flush=True)
    return samples
