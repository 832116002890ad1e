"""The console's pure parts: the timeline drawn as steps over time, the charts' figures, dead
letters with their reasons, the filters and the API's refusals as HTTP answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc

from order_service import orders_pb2 as pb
from ordersaga.console import views

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)


def at(ms: int) -> str:
    return (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def lanes(chart: dict) -> dict[str, tuple[int, int, str, str]]:
    return {lane["name"]: (lane["start_ms"], lane["end_ms"], lane["kind"], lane["outcome"]) for lane in chart["lanes"]}


def test_parallel_steps_share_their_start_and_sequential_steps_follow():
    # As the saga writes them: results in batches with the next status change.
    entries = [
        (at(0), "place", "PLACED", ""),
        (at(10), "reserve", "STARTED", ""),
        (at(300), "reserve apple", "DONE", ""), (at(300), "reserve pear", "DONE", ""),
        (at(300), "authorize", "DONE", ""), (at(300), "approval", "STARTED", ""),
        (at(900), "approval", "RECEIVED", "approve by ann"),
        (at(950), "approval", "APPROVED", "by ann"), (at(950), "capture", "STARTED", ""),
        (at(1200), "capture", "DONE", ""), (at(1200), "ship", "STARTED", ""),
        (at(1500), "ship", "DONE", "TRK-1"), (at(1500), "commit", "DONE", ""),
        (at(1500), "complete", "COMPLETED", "TRK-1"),
    ]
    chart = views.gantt(entries)
    assert lanes(chart) == {
        "reserve apple": (10, 300, "step", "DONE"),
        "reserve pear": (10, 300, "step", "DONE"),
        "authorize": (10, 300, "step", "DONE"),  # side by side with the reservations
        "approval": (300, 950, "step", "APPROVED"),
        "capture": (950, 1200, "step", "DONE"),
        "ship": (1200, 1500, "step", "DONE"),
        "commit": (1500, 1500, "step", "DONE"),  # after ship, in the same batch
    }
    assert [(m["step"], m["outcome"], m["at_ms"]) for m in chart["markers"]] == [
        ("place", "PLACED", 0), ("approval", "RECEIVED", 900), ("complete", "COMPLETED", 1500)]
    assert chart["span_ms"] == 1500 and chart["t0"] == T0.isoformat(timespec="milliseconds").replace(".000", "")


def test_compensation_shows_as_undo_lanes_after_the_failure():
    entries = [
        (at(0), "place", "PLACED", ""), (at(5), "reserve", "STARTED", ""),
        (at(200), "reserve apple", "DONE", ""), (at(200), "reserve pear", "OUT_OF_STOCK", "only 0"),
        (at(200), "authorize", "DONE", ""), (at(200), "compensate", "STARTED", ""),
        (at(700), "undo authorize", "DONE", ""), (at(700), "undo reserve apple", "DONE", ""),
        (at(700), "finish", "FAILED", ""),
    ]
    got = lanes(views.gantt(entries))
    assert got["reserve pear"] == (5, 200, "step", "OUT_OF_STOCK")
    assert got["compensate"] == (200, 700, "undo", "FAILED")
    assert got["undo authorize"] == (200, 700, "undo", "DONE")
    assert got["undo reserve apple"] == (700, 700, "undo", "DONE")  # undos run one after another


def test_a_retry_runs_after_the_stuck_compensation_not_from_it():
    entries = [
        (at(0), "place", "PLACED", ""), (at(5), "reserve", "STARTED", ""),
        (at(100), "reserve apple", "DONE", ""), (at(100), "authorize", "DONE", ""),
        (at(100), "capture", "STARTED", ""), (at(200), "capture", "DONE", ""), (at(200), "ship", "STARTED", ""),
        (at(900), "ship", "ERROR", "unavailable"), (at(900), "compensate", "STARTED", ""),
        (at(1500), "undo ship", "ERROR", ""), (at(1500), "undo capture", "DONE", ""),
        (at(1500), "undo reserve apple", "DONE", ""), (at(1500), "attention", "NEEDED", "could not undo: ship"),
        (at(60_000), "retry", "REQUESTED", "by ann"), (at(60_100), "retry", "STARTED", "attempt 1, by ann"),
        (at(61_000), "undo ship", "DONE", ""), (at(61_000), "finish", "FAILED", ""),
    ]
    chart = views.gantt(entries)
    got = [(lane["name"], lane["start_ms"], lane["end_ms"], lane["outcome"]) for lane in chart["lanes"]]
    assert ("compensate", 900, 1500, "NEEDED") in got
    assert ("retry", 60_100, 61_000, "FAILED") in got
    assert ("undo ship", 60_100, 61_000, "DONE") in got, got  # the retry's undo, not from the first one
    assert ("undo ship", 900, 1500, "ERROR") in got
    assert [m["step"] for m in chart["markers"]] == ["place", "attention", "retry", "finish"]


def test_a_step_still_running_reaches_now_and_says_so():
    entries = [(at(0), "place", "PLACED", ""), (at(10), "reserve", "STARTED", ""),
               (at(100), "reserve apple", "DONE", ""), (at(100), "authorize", "DONE", ""),
               (at(100), "approval", "STARTED", "")]
    chart = views.gantt(entries, running=True, now=T0 + timedelta(seconds=5))
    (approval,) = [lane for lane in chart["lanes"] if lane["name"] == "approval"]
    assert (approval["start_ms"], approval["end_ms"], approval["running"]) == (100, 5000, True)
    assert chart["span_ms"] == 5000


def test_no_timeline_and_bad_times_draw_nothing():
    assert views.gantt([])["lanes"] == []
    assert views.gantt([("yesterday", "place", "PLACED", "")])["lanes"] == []


def order(order_id="o-1", customer="c-1", status="COMPLETED", placed_ms=0, ended_ms=2000) -> pb.Order:
    timeline = [pb.TimelineEntry(at=at(placed_ms), step="place", outcome="PLACED")]
    if ended_ms is not None:
        timeline.append(pb.TimelineEntry(at=at(ended_ms), step="complete", outcome=status))
    return pb.Order(order_id=order_id, customer_id=customer, status=status, total_cents=1250, timeline=timeline)


def test_a_summary_has_its_placed_and_ended_times_and_detail_its_actions():
    summary = views.order_summary(order(ended_ms=1500))
    assert summary["placed_at"] == T0.isoformat() and summary["ended_at"] == (T0 + timedelta(seconds=1.5)).isoformat()
    assert views.order_summary(order(status="SHIPPING"))["ended_at"] == ""
    assert views.order_detail(order(status="AWAITING_APPROVAL", ended_ms=None))["actions"] == [
        "approve", "reject", "cancel"]
    assert views.order_detail(order(status="NEEDS_ATTENTION"))["actions"] == ["retry", "close"]
    assert views.order_detail(order())["actions"] == []


def test_the_list_filters_by_status_and_finds_by_id_or_customer():
    rows = [views.order_summary(order("o-apple-1", "ann")), views.order_summary(order("o-2", "bob", "FAILED"))]
    assert [r["order_id"] for r in rows if views.matches(r, "FAILED", "")] == ["o-2"]
    assert [r["order_id"] for r in rows if views.matches(r, "", "APPLE")] == ["o-apple-1"]
    assert [r["order_id"] for r in rows if views.matches(r, "", "bob")] == ["o-2"]
    assert [r["order_id"] for r in rows if views.matches(r, "COMPLETED", "bob")] == []


def test_charts_count_endings_per_minute_and_time_placed_to_ended():
    now = T0 + timedelta(minutes=10)
    rows = [views.order_summary(order(f"o-{n}", ended_ms=1000 * (n + 1))) for n in range(10)]
    rows.append(views.order_summary(order("o-failed", status="FAILED", ended_ms=500)))
    rows.append(views.order_summary(order("o-busy", status="SHIPPING", ended_ms=None)))
    figures = views.charts(rows, now, minutes=30)
    minute = figures["per_minute"][20]  # the minute that began ten minutes ago
    assert (minute["COMPLETED"], minute["other"]) == (10, 1)
    assert figures["in_flight"] == 1 and figures["by_status"]["COMPLETED"] == 10
    assert [d["seconds"] for d in figures["durations"]][:2] == [0.5, 1.0]
    assert figures["p50_s"] == 5.0 and figures["p95_s"] == 10.0
    assert views.percentile([], 50) is None


def test_a_dead_letter_row_keeps_its_reason_and_payload_as_text_and_says_which_redrive_sent_it():
    from ordersaga.deadletters import Letter

    letter = Letter(id="js:7", kind="approvals", event_id="e-1.redrive-abc", time="2026-01-05T12:00:00Z",
                    reason="NOT_FOUND: order <b>o-1</b> does not exist", order_id="o-1",
                    data='{"order_id": "o-1", "decision": "approve", "approver": "<i>a</i>"}')
    row = views.letter_row(letter)
    assert (row["id"], row["reason"], row["decision"], row["approver"], row["redriven_by"]) == (
        "js:7", "NOT_FOUND: order <b>o-1</b> does not exist", "approve", "<i>a</i>", "abc")
    huge = views.letter_row(Letter(id="js:8", kind="requests", event_id="e", time="", reason="r", order_id="",
                                   data="x" * 10_000))
    assert huge["truncated"] and len(huge["payload"]) == 2048


def test_the_apis_refusal_keeps_its_code_and_message():
    status, body = views.refusal(grpc.StatusCode.FAILED_PRECONDITION, "order o-1 is COMPLETED")
    assert status == 409 and body == {"error": {"code": "FAILED_PRECONDITION", "details": "order o-1 is COMPLETED"}}
    assert views.refusal(grpc.StatusCode.INTERNAL, "")[0] == 502
