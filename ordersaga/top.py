"""`ordersaga top`: a live terminal view of an `--observe` stack, from its Prometheus endpoints.

Every refresh scrapes every app and sidecar listed in stack.json (`status --json`'s
observability block), adds the processes up (replicas each report their own share), and shows
sagas finished per second, orders in flight by status, how orders ended, p50/p95 of each saga
step, compensations, dead letters, refusals, and Dapr's own workflow counters. Rates and
percentiles are over the last few seconds (a sliding window of scrapes); `--once` takes two
scrapes a second apart and prints one frame.
"""

from __future__ import annotations

import math
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ordersaga.stack.layout import StackState
from ordersaga.stack.stack import StackError, observability

WINDOW_S = 10.0  # rates and percentiles over about this long
IN_FLIGHT_ORDER = ["PLACED", "RESERVING", "AWAITING_APPROVAL", "CHARGING", "SHIPPING", "COMPENSATING"]
STEP_ORDER = ["reserve", "authorize", "capture", "ship", "commit", "release", "void", "refund", "cancel shipment"]


@dataclass
class Snapshot:
    """One scrape of every endpoint, summed over processes: (name, sorted label pairs) -> value."""

    at: float
    values: dict[tuple[str, tuple], float] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)

    def total(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels`."""
        return sum(v for (n, ls), v in self.values.items() if n == name and _has(ls, labels))

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (n, ls), v in self.values.items():
            if n == name:
                out[dict(ls).get(label, "")] += v
        return dict(out)

    def buckets(self, name: str, **labels: str) -> dict[float, float]:
        """A histogram's cumulative buckets (upper bound -> count), summed over other labels."""
        out: dict[float, float] = defaultdict(float)
        for (n, ls), v in self.values.items():
            if n == f"{name}_bucket" and _has(ls, labels):
                out[float(dict(ls)["le"])] += v
        return dict(out)


def _has(pairs: tuple, wanted: dict[str, str]) -> bool:
    have = dict(pairs)
    return all(have.get(k) == v for k, v in wanted.items())


def parse(text: str, into: dict[tuple[str, tuple], float] | None = None) -> dict[tuple[str, tuple], float]:
    """Prometheus text format to summed samples (adding to `into`)."""
    values = into if into is not None else {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + float(sample.value)
    return values


def scrape(endpoints: dict[str, str], timeout: float = 2.0) -> Snapshot:
    snapshot = Snapshot(at=time.monotonic())
    for name, url in endpoints.items():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                parse(response.read().decode(errors="replace"), snapshot.values)
        except (urllib.error.URLError, OSError, ValueError):
            snapshot.down.append(name)
    return snapshot


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated inside its bucket (as Prometheus's
    histogram_quantile does); None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the largest finite bucket: its bound is what we know
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _delta(new: dict[float, float], old: dict[float, float]) -> dict[float, float]:
    return {bound: count - old.get(bound, 0.0) for bound, count in new.items()}


def frame(first: Snapshot, last: Snapshot, title: str = "") -> str:
    """One screen: rates and percentiles between two snapshots (percentiles over all time when
    no step ran in between), levels from the last one."""
    span = max(last.at - first.at, 1e-9)
    finished, placed = "ordersaga_orders_finished_total", "ordersaga_orders_placed_total"
    lines = [title] if title else []
    sagas_s = (last.total(finished) - first.total(finished)) / span
    placed_s = (last.total(placed) - first.total(placed)) / span
    in_flight = last.by("ordersaga_orders_in_flight", "status")
    lines.append(f"sagas/s {sagas_s:6.2f}   placed/s {placed_s:6.2f}   in flight {sum(in_flight.values()):5.0f}   "
                 f"awaiting approval {last.total('ordersaga_approvals_waiting'):4.0f}   (over {span:.0f}s)")
    lines.append("in flight  " + "  ".join(f"{s} {in_flight.get(s, 0):.0f}" for s in IN_FLIGHT_ORDER))
    ended = last.by(finished, "status")
    lines.append("finished   " + ("  ".join(f"{s} {n:.0f}" for s, n in sorted(ended.items())) or "none yet"))
    reasons = {reason: n for reason, n in last.by(finished, "reason").items() if reason}
    if reasons:
        lines.append("  reasons  " + "  ".join(f"{r} {n:.0f}" for r, n in sorted(reasons.items())))

    steps = sorted({dict(ls).get("step", "") for (n, ls) in last.values if n == "ordersaga_step_seconds_count"},
                   key=lambda s: (STEP_ORDER.index(s) if s in STEP_ORDER else len(STEP_ORDER), s))
    windowed = any(last.total("ordersaga_step_seconds_count", step=s) > first.total("ordersaga_step_seconds_count",
                                                                                      step=s) for s in steps)
    lines.append("")
    lines.append(f"{'step':<16}{'calls':>8}{'errors':>8}{'p50 ms':>10}{'p95 ms':>10}"
                 f"   ({'last ' + format(span, '.0f') + 's' if windowed else 'since start'})")
    for step in steps:
        buckets = last.buckets("ordersaga_step_seconds", step=step)
        calls = last.total("ordersaga_step_seconds_count", step=step)
        errors = last.total("ordersaga_step_seconds_count", step=step, outcome="error")
        if windowed:
            buckets = _delta(buckets, first.buckets("ordersaga_step_seconds", step=step))
            calls -= first.total("ordersaga_step_seconds_count", step=step)
            errors -= first.total("ordersaga_step_seconds_count", step=step, outcome="error")
        p50, p95 = quantile(0.5, buckets), quantile(0.95, buckets)
        lines.append(f"{step:<16}{calls:>8.0f}{errors:>8.0f}{_ms(p50):>10}{_ms(p95):>10}")
    if not steps:
        lines.append("(no step has run yet)")

    lines.append("")
    comp = last.by("ordersaga_compensations_total", "step")
    lines.append("compensations  " + ("  ".join(f"{s} {n:.0f}" for s, n in sorted(comp.items())) or "0"))
    dead = last.by("ordersaga_dead_letters_total", "subscription")
    lines.append("dead letters   " + ("  ".join(f"{s} {n:.0f}" for s, n in sorted(dead.items())) or "0"))
    refused = last.by("ordersaga_requests_refused_total", "code")
    lines.append("refused        " + ("  ".join(f"{c} {n:.0f}" for c, n in sorted(refused.items())) or "0"))
    # Dapr's counters, with or without the `_total` suffix newer exporters add.
    wf = sum(last.total(n) for n in ("dapr_runtime_workflow_execution_count",
                                     "dapr_runtime_workflow_execution_count_total"))
    activities = sum(last.total(n) for n in ("dapr_runtime_workflow_activity_execution_count",
                                             "dapr_runtime_workflow_activity_execution_count_total"))
    lines.append(f"dapr           workflow executions {wf:.0f}  activity executions {activities:.0f}")
    if last.down:
        lines.append(f"no answer from: {', '.join(last.down)}")
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def endpoints_of(run_dir: Path) -> dict[str, str]:
    state = StackState.load(run_dir)
    if state is None or not state.processes:
        raise StackError(f"no stack is running in {run_dir}: start one with `ordersaga up --observe --detach`")
    if not state.observe:
        raise StackError(f"the stack in {run_dir} was not started with --observe, so it serves no metrics: "
                         "`ordersaga down`, then `ordersaga up --observe`")
    return observability(state)["metrics"]


def run(run_dir: Path, once: bool = False, interval: float = 2.0, out=None) -> int:
    out = out or sys.stdout
    endpoints = endpoints_of(run_dir)
    title = f"ordersaga top: {run_dir} ({len(endpoints)} endpoints)"
    if once:
        first = scrape(endpoints)
        time.sleep(1.0)
        print(frame(first, scrape(endpoints), title), file=out, flush=True)
        return 0
    history: deque[Snapshot] = deque()
    live = out.isatty()
    try:
        while True:
            history.append(scrape(endpoints))
            while len(history) > 2 and history[-1].at - history[1].at >= WINDOW_S:
                history.popleft()
            text = frame(history[0], history[-1], f"{title}   {time.strftime('%H:%M:%S')}   Ctrl-C quits")
            print(("\x1b[H\x1b[2J" if live else "") + text + ("" if live else "\n"), file=out, flush=True)
            time.sleep(max(interval, 0.2))
    except KeyboardInterrupt:
        return 0
