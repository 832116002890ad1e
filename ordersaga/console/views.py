"""What the console's pages show, computed from orders and dead letters: pure functions, no I/O.

The browser gets JSON from these and draws it with text nodes only, so nothing here escapes
HTML: free text (reasons, notes, approver names, dead-letter payloads) stays as it came.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import grpc

from order_service import orders_pb2 as pb

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION")
IN_FLIGHT = ("PLACED", "RESERVING", "AWAITING_APPROVAL", "CHARGING", "SHIPPING", "COMPENSATING")
STATUSES = IN_FLIGHT + TERMINAL
# A decision is accepted before the saga reaches its gate (it waits, buffered) and at the gate.
DECIDABLE = ("PLACED", "RESERVING", "AWAITING_APPROVAL")

# Timeline steps that are moments rather than work with a duration.
_MARKER_STEPS = {"place", "cancel", "deadline", "retry", "close", "complete", "finish", "attention", "saga"}
# Lanes that span the work after them (the undos, a retry's calls), until the order's ending.
_PHASES = ("compensate", "retry")
_ENDINGS = {"finish", "attention", "complete", "close"}
_PAYLOAD_SHOWN = 2048  # characters of a dead letter's payload sent to the page


def parse_at(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# ---- orders ---------------------------------------------------------------------------------

def order_summary(order: pb.Order) -> dict:
    """A row of the orders list (a listed order carries no timeline: its times are its own)."""
    placed = parse_at(order.placed_at) if order.placed_at else parse_at(order.timeline[0].at) if order.timeline \
        else None
    ended = None
    if order.status in TERMINAL:
        ended = parse_at(order.status_since) if order.status_since else \
            parse_at(order.timeline[-1].at) if order.timeline else None
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": order.status,
        "reason": order.reason,
        "total_cents": order.total_cents,
        "saga_runtime_status": order.saga_runtime_status,
        "placed_at": placed.isoformat() if placed else "",
        "ended_at": ended.isoformat() if ended else "",
        "last_step": f"{order.timeline[-1].step} {order.timeline[-1].outcome}" if order.timeline else "",
        "status_since": order.status_since,
        "saga_version": order.saga_version,
    }


def order_detail(order: pb.Order, now: datetime | None = None) -> dict:
    """An order's page: the order, its timeline as entries and as a Gantt chart, its actions."""
    data = order_summary(order)
    data.update({
        "saga_instance_id": order.saga_instance_id,
        "tracking_number": order.tracking_number,
        "items": [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in order.items],
        "timeline": [{"at": e.at, "step": e.step, "outcome": e.outcome, "detail": e.detail} for e in order.timeline],
        "gantt": gantt([(e.at, e.step, e.outcome, e.detail) for e in order.timeline],
                       running=order.status not in TERMINAL, now=now),
        "actions": actions_for(order.status),
    })
    return data


def actions_for(status: str) -> list[str]:
    """The buttons an order's page offers. The API is the judge (the page shows its refusals);
    this only hides buttons that cannot apply."""
    actions = []
    if status in DECIDABLE:
        actions += ["approve", "reject"]
    if status not in TERMINAL and status != "COMPENSATING":
        actions.append("cancel")
    if status == "NEEDS_ATTENTION":
        actions += ["retry", "close"]
    return actions


def matches(summary: dict, status: str, query: str) -> bool:
    if status and summary["status"] != status:
        return False
    query = query.strip().lower()
    return not query or query in summary["order_id"].lower() or query in summary["customer_id"].lower()


# ---- the timeline as steps over time --------------------------------------------------------

def gantt(entries: list[tuple[str, str, str, str]], running: bool = False, now: datetime | None = None) -> dict:
    """Lanes (steps with a start and an end, in ms from the first entry) and markers (moments).

    The actor stamps entries when it records them, and the saga records them in batches, so a
    step's start is its own `STARTED` entry, else the latest `STARTED` before its result (the
    phase it ran in: `authorize` shares `reserve`'s start, which is how parallel steps show side
    by side); an undo starts where the previous undo ended (they run one after another) or at
    `compensate STARTED` (or `retry STARTED`: a retry runs the unfinished calls again); a step
    after one that ended on its own result (`commit` after `ship`) starts at that end. The
    compensation and a retry span until the order's ending. A lane with no result yet runs
    until now (or the last entry).
    """
    parsed = [(parse_at(at), step, outcome, detail) for at, step, outcome, detail in entries]
    parsed = [p for p in parsed if p[0] is not None]
    if not parsed:
        return {"t0": "", "span_ms": 0, "lanes": [], "markers": []}
    t0 = parsed[0][0]

    def ms(moment: datetime) -> int:
        return max(0, round((moment - t0).total_seconds() * 1000))

    lanes: list[dict] = []
    markers: list[dict] = []
    open_lanes: dict[str, dict] = {}  # step -> its lane, from STARTED until its own result
    phase_start = 0  # the latest STARTED entry
    last_closed_end: int | None = None  # a lane closed by its own result since that STARTED
    last_undo_end: int | None = None
    for moment, step, outcome, detail in parsed:
        t = ms(moment)
        if outcome == "STARTED":
            lane = _lane(step, t, None, outcome, detail)
            lanes.append(lane)
            open_lanes[step] = lane
            phase_start, last_closed_end = t, None
            if step in _PHASES:
                last_undo_end = None
            continue
        if step in _MARKER_STEPS or (step == "approval" and outcome == "RECEIVED"):
            markers.append({"step": step, "outcome": outcome, "detail": detail, "at_ms": t})
            if step in _ENDINGS:
                for phase in [name for name in _PHASES if name in open_lanes]:
                    _close(open_lanes.pop(phase), t, outcome)
            continue
        if step in open_lanes:  # the result of a step that said it started
            _close(open_lanes.pop(step), t, outcome, detail)
            last_closed_end = t
            continue
        if step.startswith("undo "):
            start = last_undo_end if last_undo_end is not None else phase_start
            last_undo_end = t
        else:
            start = last_closed_end if last_closed_end is not None else phase_start
        parent = open_lanes.get(step.split(" ")[0])
        if parent is not None and parent["name"] != step:
            parent["parts"] += 1  # `reserve apple` is a part of `reserve`: it replaces that lane
            parent["end_ms"] = max(parent["end_ms"] or 0, t)
        lanes.append(_lane(step, start, t, outcome, detail))
    lanes = [lane for lane in lanes if not lane.pop("parts")]  # phases shown through their parts
    end = ms(now) if running and now else ms(parsed[-1][0])
    for lane in lanes:
        if lane["end_ms"] is None:
            lane["end_ms"] = max(end, lane["start_ms"])
            lane["running"] = running
    span = max([end] + [lane["end_ms"] for lane in lanes] + [m["at_ms"] for m in markers])
    return {"t0": t0.isoformat(), "span_ms": span, "lanes": lanes, "markers": markers}


def _lane(step: str, start: int, end: int | None, outcome: str, detail: str) -> dict:
    kind = "undo" if step.startswith("undo ") or step == "compensate" else "step"
    return {"name": step, "kind": kind, "start_ms": start, "end_ms": end, "outcome": outcome, "detail": detail,
            "running": False, "parts": 0}


def _close(lane: dict, t: int, outcome: str, detail: str = "") -> None:
    lane["end_ms"] = t
    lane["outcome"] = outcome
    if detail:
        lane["detail"] = detail


# ---- throughput and latency -----------------------------------------------------------------

def charts(summaries: list[dict], now: datetime, minutes: int = 30, recent: int = 60,
           counts: dict[str, int] | None = None) -> dict:
    """Orders ended per minute over the last `minutes` (by terminal status), and the
    placed-to-terminal durations of the `recent` latest ended orders, with p50 and p95, from the
    latest orders; the counts by status are every order's (`counts`, ListOrders' answer) when
    given, else the summaries'."""
    start = now.timestamp() - minutes * 60
    per_minute = [{"minute": i, "COMPLETED": 0, "other": 0} for i in range(minutes)]
    ended = []
    for summary in summaries:
        placed, finished = parse_at(summary["placed_at"]), parse_at(summary["ended_at"])
        if not finished:
            continue
        if placed:
            ended.append((finished, (finished - placed).total_seconds(), summary))
        index = int((finished.timestamp() - start) // 60)
        if 0 <= index < minutes:
            per_minute[index]["COMPLETED" if summary["status"] == "COMPLETED" else "other"] += 1
    ended.sort(key=lambda e: e[0])
    latest = ended[-recent:]
    by_status = {status: (counts or {}).get(status, 0) if counts is not None
                 else sum(1 for s in summaries if s["status"] == status) for status in STATUSES}
    durations = sorted(seconds for _, seconds, _ in latest)
    return {
        "minutes": minutes,
        "per_minute": per_minute,
        "in_flight": sum(n for status, n in by_status.items() if status not in TERMINAL),
        "by_status": by_status,
        "durations": [{"order_id": s["order_id"], "status": s["status"], "seconds": round(seconds, 3)}
                      for _, seconds, s in latest],
        "p50_s": percentile(durations, 50),
        "p95_s": percentile(durations, 95),
    }


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return round(sorted_values[int(rank) - 1], 3)


# ---- bulk actions ---------------------------------------------------------------------------

def bulk_summary(b: pb.BulkAction) -> dict:
    return {"bulk_id": b.bulk_id, "action": b.action, "state": b.state, "selected": b.selected,
            "left_alone": b.left_alone, "done": b.done, "changed": b.changed, "skipped": b.skipped,
            "failed": b.failed, "filter": b.filter, "operator": b.operator, "started_at": b.started_at,
            "results": [{"order_id": r.order_id, "status": r.status, "outcome": r.outcome, "detail": r.detail}
                        for r in b.results]}


# ---- dead letters ---------------------------------------------------------------------------

def letter_row(letter) -> dict:
    """One dead letter (ordersaga.deadletters.Letter) as the dead-letters page shows it."""
    decision = _json(letter.data) if letter.kind == "approvals" else None
    decision = decision if isinstance(decision, dict) else {}
    return {"id": letter.id, "kind": letter.kind, "time": letter.time, "reason": letter.reason,
            "order_id": letter.order_id, "payload": letter.data[:_PAYLOAD_SHOWN],
            "truncated": len(letter.data) > _PAYLOAD_SHOWN, "redriven_by": letter.redriven_by,
            "decision": str(decision.get("decision", ""))[:20], "approver": str(decision.get("approver", ""))[:200]}


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


# ---- the API's refusals ---------------------------------------------------------------------

_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def refusal(code: grpc.StatusCode, details: str) -> tuple[int, dict]:
    """The HTTP status and body the console answers with when the API refuses: the gRPC code
    and the API's own message, so the page can say exactly what the API said."""
    return _HTTP.get(code, 502), {"error": {"code": code.name, "details": details or ""}}
