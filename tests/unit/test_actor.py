"""OrderActor's rules on fakes (no sidecar): every method is safe to stop at any point, and what a
stop leaves undone is mended by a repeat of the call or by the order's reminders.

A stop is a call out of the actor (to the index, the broker, the workflow engine) that fails:
the method ends there, as it would on a crash, keeping what it saved. A "restart" is a new actor
object over the same stored state and reminders. The fakes keep what reached the outside world:
the index's labels, the published events, the started workflows, the raised events.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from dapr.actor.runtime.mock_actor import create_mock_actor

from order_service import actor as actor_module
from order_service.actor import CHECKUP_REMINDER, SETTLE_REMINDER, OrderActor, OrderError
from order_service.actor_ports import SagaRun
from order_service.settings import Settings

SMALL = [{"sku": "apple", "quantity": 1, "unit_price_cents": 500}]  # 5.00
LARGE = [{"sku": "apple", "quantity": 1, "unit_price_cents": 150_000}]  # 1,500.00: needs approval at 1,000


class Injected(ConnectionError):
    """A call out of the actor failed (the sidecar, the broker or the engine was away)."""


class FakePorts:
    def __init__(self):
        self.index: dict[str, str] = {}
        self.published: list = []
        self.started: dict[str, tuple[str, dict]] = {}
        self.runs: dict[str, SagaRun] = {}
        self.raised: list[tuple[str, str, dict]] = []
        self.purged: list[str] = []
        self.calls: list[str] = []
        self.failing: dict[str, int] = {}  # port -> how many of its next calls fail

    def fail(self, port: str, times: int = 1) -> None:
        self.failing[port] = times

    def _call(self, port: str) -> None:
        if self.failing.get(port, 0) > 0:
            self.failing[port] -= 1
            raise Injected(f"{port} failed (injected)")
        self.calls.append(port)

    async def note_in_index(self, order_id, label):
        self._call("note_in_index")
        self.index[order_id] = label

    async def publish(self, event):
        self._call("publish")
        self.published.append(event)

    async def start_workflow(self, name, workflow_input, instance_id):
        self._call("start_workflow")
        assert instance_id not in self.runs or self.runs[instance_id].status in ("COMPLETED", "FAILED", "TERMINATED")
        self.started[instance_id] = (name, workflow_input)
        self.runs[instance_id] = SagaRun("RUNNING")

    async def saga_run(self, instance_id):
        self._call("saga_run")
        return self.runs.get(instance_id)

    async def raise_event(self, instance_id, name, data):
        self._call("raise_event")
        if instance_id not in self.runs:
            raise RuntimeError(f"no such workflow instance: {instance_id}")
        self.raised.append((instance_id, name, data))

    async def purge_workflow(self, instance_id):
        self._call("purge_workflow")
        self.runs.pop(instance_id, None)
        self.purged.append(instance_id)

    def listed(self, order_id: str) -> str:
        """The status the order's row in the index says."""
        return json.loads(self.index[order_id])["s"] if order_id in self.index else ""

    def events_of(self, order_id: str) -> list[str]:
        return [e.type for e in self.published if e.order_id == order_id]


class Order:
    """One order's actor across restarts: the stored state and reminders survive, the object not."""

    def __init__(self, ports: FakePorts, order_id: str = "o-1"):
        self.ports, self.order_id = ports, order_id
        self.state: dict = {}
        self.reminders: dict = {}
        self.reminder_failures = 0
        self.restart()

    def restart(self) -> None:
        self.actor = create_mock_actor(OrderActor, self.order_id)
        self.actor._state_manager._mock_state = self.state  # shared: what was saved survives
        self.actor._state_manager._mock_reminders = self.reminders
        register = self.actor.register_reminder

        async def register_or_fail(*args, **kwargs):
            if self.reminder_failures > 0:
                self.reminder_failures -= 1
                raise Injected("register_reminder failed (injected)")
            await register(*args, **kwargs)
        self.actor.register_reminder = register_or_fail

    def call(self, method: str, data=None):
        return asyncio.run(getattr(self.actor, method)(*([] if data is None and method == "get" else [data])))

    def fire(self, reminder: str) -> None:
        """The reminder fires (in a restarted process, as it may)."""
        assert reminder in self.reminders, f"no {reminder} reminder armed: {sorted(self.reminders)}"
        self.restart()
        asyncio.run(self.actor.receive_reminder(reminder, b"", timedelta(0), timedelta(0)))

    def stored(self) -> dict | None:
        return self.call("get")

    def place(self, items=SMALL):
        return self.call("place", {"order_id": self.order_id, "customer_id": "c-1", "items": items})

    def record(self, *records, unfinished=None):
        return self.call("record_steps", {"records": [dict(r, order_id=self.order_id) for r in records],
                                          "unfinished": unfinished})


@pytest.fixture()
def ports():
    fake = FakePorts()
    actor_module.configure(Settings(approval_threshold_cents=1000_00, order_deadline_s=3600, start_check_s=60),
                           ports=fake)
    yield fake
    actor_module.configure(Settings())


def assert_fully_placed(order: Order) -> None:
    ports = order.ports
    assert order.stored()["status"] == "PLACED"
    assert ports.listed(order.order_id) == "PLACED", "the order is not listed"
    assert ports.events_of(order.order_id) == ["placed"], "placed was not announced (once)"
    assert f"order-saga-{order.order_id}" in ports.started, "its saga never started"


# ---- hole 3: PlaceOrder may stop anywhere ---------------------------------------------------

def test_a_placed_order_is_listed_announced_started_and_checked_up(ports):
    order = Order(ports)
    order.place()
    assert_fully_placed(order)
    # The order's row first, the announcement before the saga.
    assert [c for c in ports.calls if c != "saga_run"] == ["note_in_index", "publish", "start_workflow"]
    assert CHECKUP_REMINDER in order.reminders


@pytest.mark.parametrize("stop_at", ["note_in_index", "publish", "start_workflow"])
def test_a_placement_that_stopped_anywhere_is_mended_by_the_checkup_without_the_client(ports, stop_at):
    order = Order(ports)
    ports.fail(stop_at)
    with pytest.raises(Exception):
        order.place()
    if order.stored() is None:  # stopped before the order was saved: nothing to mend, nothing half-done
        assert order.order_id not in ports.started and not ports.events_of(order.order_id)
        return
    order.fire(CHECKUP_REMINDER)
    assert_fully_placed(order)


@pytest.mark.parametrize("stop_at", ["note_in_index", "publish", "start_workflow"])
def test_a_placement_that_stopped_anywhere_is_mended_by_a_repeated_place(ports, stop_at):
    order = Order(ports)
    ports.fail(stop_at)
    with pytest.raises(Exception):
        order.place()
    order.restart()
    assert order.place()["status"] == "PLACED"
    assert_fully_placed(order)


def test_a_checkup_that_cannot_be_armed_fails_the_placement_before_anything_is_stored(ports):
    order = Order(ports)
    order.reminder_failures = 1
    with pytest.raises(Injected):
        order.place()
    assert order.stored() is None and not ports.calls


def test_an_index_failure_is_not_swallowed_at_placing(ports):
    """Issue 18, hole 9: an order the index never heard of is never listed."""
    order = Order(ports)
    ports.fail("note_in_index")
    with pytest.raises(Exception):
        order.place()
    assert order.order_id not in ports.started, "a saga started for an order ListOrders cannot find"


# ---- hole 4: a cancel whose event did not reach the saga ------------------------------------

def awaiting_approval(ports) -> Order:
    order = Order(ports)
    order.place(items=LARGE)
    order.record({"step": "approval", "outcome": "STARTED", "key": "approval:STARTED", "status": "AWAITING_APPROVAL"})
    return order


def test_a_repeated_cancel_raises_the_event_that_failed_the_first_time(ports):
    order = awaiting_approval(ports)
    ports.fail("raise_event")
    with pytest.raises(OrderError):
        order.call("cancel", {"reason": "changed my mind"})
    assert order.stored()["cancel_requested"]  # the gate holds: no charge, no shipment
    order.call("cancel", {"reason": "changed my mind"})
    assert [(name, data["reason"]) for _, name, data in ports.raised] == [("cancel", "changed my mind")]


def test_a_cancel_event_that_failed_is_raised_by_the_settle_reminder_if_nobody_repeats_it(ports):
    order = awaiting_approval(ports)
    ports.fail("raise_event")
    with pytest.raises(OrderError):
        order.call("cancel", {"reason": "changed my mind"})
    order.fire(SETTLE_REMINDER)
    assert [name for _, name, _ in ports.raised] == ["cancel"]
    order.fire(SETTLE_REMINDER)
    assert [name for _, name, _ in ports.raised] == ["cancel"], "raised again after it was delivered"


# ---- hole 5: the threshold travels with the order ---------------------------------------------

def test_a_release_that_raises_the_threshold_does_not_strand_a_waiting_order(ports):
    order = awaiting_approval(ports)  # 1,500.00, placed when the threshold was 1,000.00
    actor_module.configure(Settings(approval_threshold_cents=2000_00), ports=ports)
    assert order.call("decide", {"decision": "approve", "approver": "ann"})["outcome"] == "accepted"
    assert [name for _, name, _ in ports.raised] == ["approval"]


def test_a_release_that_lowers_the_threshold_does_not_invent_approvals(ports):
    order = Order(ports)
    order.place(items=SMALL)  # 5.00: its saga asks for no approval
    actor_module.configure(Settings(approval_threshold_cents=1_00), ports=ports)
    with pytest.raises(OrderError, match="does not need approval"):
        order.call("decide", {"decision": "approve", "approver": "ann"})
    (saga_input,) = [i for _, i in ports.started.values()]
    assert saga_input["approval_threshold_cents"] == 1000_00


# ---- hole 6: a close whose event the broker refused -------------------------------------------

def needing_attention(ports) -> Order:
    order = Order(ports)
    order.place()
    order.record({"step": "attention", "outcome": "NEEDED", "key": "attention:NEEDED", "status": "NEEDS_ATTENTION"},
                 unfinished={"calls": [], "ending": {"status": "FAILED", "reason": "SHIPPING_FAILED"},
                             "resume_status": "COMPENSATING"})
    return order


def test_a_close_the_broker_refused_to_announce_still_closes_and_the_event_follows(ports):
    order = needing_attention(ports)
    ports.fail("publish")
    closed = order.call("close", {"by": "ops", "note": "cancelled the parcel by phone"})
    assert (closed["status"], closed["reason"]) == ("FAILED", "SHIPPING_FAILED")
    assert "failed" not in ports.events_of(order.order_id)
    # A repeat (the operator saw no answer) is answered, not refused, and the event goes out.
    again = order.call("close", {"by": "ops", "note": "cancelled the parcel by phone"})
    assert again["status"] == "FAILED"
    assert ports.events_of(order.order_id).count("failed") == 1


def test_a_close_event_that_failed_goes_out_with_the_settle_reminder(ports):
    order = needing_attention(ports)
    ports.fail("publish")
    order.call("close", {"by": "ops", "note": "done by hand"})
    order.fire(SETTLE_REMINDER)
    assert ports.events_of(order.order_id).count("failed") == 1


def test_the_row_follows_every_status_change_with_the_time_it_changed(ports):
    order = Order(ports)
    order.place()
    placed_since = json.loads(ports.index[order.order_id])["t"]
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    row = json.loads(ports.index[order.order_id])
    assert row["s"] == "RESERVING" and row["t"] >= placed_since and row["p"] == order.stored()["placed_at"]


# ---- hole 9: the index label of an order that ended ----------------------------------------

def test_a_terminal_label_the_index_refused_is_written_later(ports):
    order = Order(ports)
    order.place()
    ports.fail("note_in_index")
    order.record({"step": "finish", "outcome": "FAILED", "key": "finish:FAILED", "status": "FAILED",
                  "reason": "OUT_OF_STOCK"})
    assert ports.listed(order.order_id) == "PLACED"
    order.fire(SETTLE_REMINDER)
    assert ports.listed(order.order_id) == "FAILED"


# ---- the check-up ----------------------------------------------------------------------------

def test_a_saga_that_ended_without_telling_the_order_is_noticed(ports):
    """The saga's last write to the order kept failing (the order's store was full, say) and the
    saga ended anyway: the check-up puts the order in NEEDS_ATTENTION instead of in flight forever."""
    order = Order(ports)
    order.place()
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    ports.runs["order-saga-o-1"] = SagaRun("COMPLETED", '"FAILED"')
    order.fire(CHECKUP_REMINDER)
    stored = order.stored()
    assert stored["status"] == "NEEDS_ATTENTION"
    assert stored["unfinished"]["ending"] == {"status": "FAILED", "reason": "INTERNAL_ERROR", "tracking_number": ""}
    assert "needs_attention" in ports.events_of(order.order_id)


def test_a_running_saga_is_left_alone_by_the_checkup(ports):
    order = Order(ports)
    order.place()
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    order.fire(CHECKUP_REMINDER)
    assert order.stored()["status"] == "RESERVING"
    assert ports.events_of(order.order_id) == ["placed"]


def test_an_order_past_its_deadline_is_flagged_once(ports):
    actor_module.configure(Settings(order_deadline_s=0, start_check_s=0), ports=ports)
    order = Order(ports)
    order.place()
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    order.fire(CHECKUP_REMINDER)
    order.fire(CHECKUP_REMINDER)
    assert [(e["step"], e["outcome"]) for e in order.stored()["timeline"]].count(("deadline", "EXCEEDED")) == 1
    assert ports.events_of(order.order_id) == ["placed", "overdue"]


def test_an_order_that_ends_drops_its_checkup(ports):
    order = Order(ports)
    order.place()
    order.record({"step": "finish", "outcome": "FAILED", "key": "finish:FAILED", "status": "FAILED",
                  "reason": "OUT_OF_STOCK"})
    assert CHECKUP_REMINDER not in order.reminders


# ---- saga v3: an order parked at the approval gate ---------------------------------------------

@pytest.fixture()
def v3(ports):
    actor_module.configure(Settings(approval_threshold_cents=1000_00, order_deadline_s=3600, start_check_s=60),
                           ports=ports, saga_version="v3")
    yield ports


def parked(ports, due_in: timedelta = timedelta(hours=1)) -> Order:
    order = Order(ports)
    order.place(items=LARGE)
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    due = (datetime.now(timezone.utc) + due_in).isoformat(timespec="milliseconds")
    order.record({"step": "approval", "outcome": "STARTED", "key": "approval:STARTED", "status": "AWAITING_APPROVAL",
                  "parks_until": due})
    ports.runs[f"order-saga-{order.order_id}"] = SagaRun("COMPLETED", '"AWAITING_APPROVAL"')  # it ended there
    return order


def test_a_park_whose_end_came_as_a_datetime_still_arms_the_check_up_for_it(v3):
    """The SDK's actor serializer turns a string that looks like a time into a datetime: the
    saga's `parks_until` reaches record_steps so. The check-up must still move to the end of
    the wait (it failed with "fromisoformat: argument must be str", and the retried call found
    the order parked already, so the wait ended up to a deadline late)."""
    order = Order(v3)
    order.place(items=LARGE)
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    due = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=123_000)
    order.record({"step": "approval", "outcome": "STARTED", "key": "approval:STARTED", "status": "AWAITING_APPROVAL",
                  "parks_until": due})
    reminder = order.reminders[CHECKUP_REMINDER]
    assert timedelta(minutes=58) < reminder.due_time + reminder.period <= timedelta(hours=1)
    stored = order.stored()
    assert isinstance(stored["approval_due"], str) and datetime.fromisoformat(stored["approval_due"]) == due


def started_second_half(ports, order_id="o-1") -> dict:
    name, decided_input = ports.started[f"order-saga-{order_id}-decided"]
    assert name == "order_saga_decided"
    return decided_input


def test_a_parked_order_keeps_one_check_up_armed_for_the_end_of_its_wait(v3):
    order = parked(v3)
    stored = order.stored()
    assert stored["parked"] and stored["status"] == "AWAITING_APPROVAL"
    reminder = order.reminders[CHECKUP_REMINDER]
    # Soon (to purge the first workflow), then at the end of the wait (an hour after parking).
    assert reminder.due_time == timedelta(seconds=60)
    assert timedelta(minutes=58) < reminder.due_time + reminder.period <= timedelta(hours=1)
    assert json.loads(v3.index[order.order_id])["k"] is True


def test_a_decision_for_a_parked_order_starts_its_second_half_and_raises_nothing(v3):
    order = parked(v3)
    assert order.call("decide", {"decision": "approve", "approver": "ann"})["outcome"] == "accepted"
    assert not v3.raised
    assert started_second_half(v3) == {**started_second_half(v3), "outcome": "approve", "approver": "ann"}
    stored = order.stored()
    assert not stored["parked"] and stored["saga_instance_id"] == "order-saga-o-1-decided"
    assert json.loads(v3.index[order.order_id])["i"] == "order-saga-o-1-decided"
    # A repeat is a duplicate, and starts nothing more.
    assert order.call("decide", {"decision": "approve", "approver": "ann"})["outcome"] == "duplicate"
    assert v3.calls.count("start_workflow") == 2  # the first half, the second half


def test_a_decision_ahead_of_the_gate_starts_the_second_half_when_the_saga_parks(v3):
    order = Order(v3)
    order.place(items=LARGE)
    order.record({"step": "reserve", "outcome": "STARTED", "key": "reserve:STARTED", "status": "RESERVING"})
    order.call("decide", {"decision": "reject", "approver": "bob"})
    assert not v3.raised, "a saga that parks waits for no event"
    order.record({"step": "approval", "outcome": "STARTED", "key": "approval:STARTED", "status": "AWAITING_APPROVAL",
                  "parks_until": "2030-01-01T00:00:00.000+00:00"})
    assert started_second_half(v3)["outcome"] == "reject"


def test_the_check_up_purges_the_first_workflow_then_ends_the_wait(v3):
    order = parked(v3, due_in=timedelta(hours=1))
    order.fire(CHECKUP_REMINDER)  # soon after parking
    assert v3.purged == ["order-saga-o-1"] and "order-saga-o-1-decided" not in v3.started
    order2 = parked(v3, due_in=-timedelta(seconds=1))
    order2.fire(CHECKUP_REMINDER)  # the wait is over
    assert started_second_half(v3)["outcome"] == "timeout"
    assert ("approval", "WAIT_ENDED") in [(e["step"], e["outcome"]) for e in order2.stored()["timeline"]]


def test_a_cancel_of_a_parked_order_starts_the_second_half_to_unwind(v3):
    order = parked(v3)
    order.call("cancel", {"reason": "changed my mind"})
    assert started_second_half(v3)["outcome"] == "cancel" and not v3.raised


def test_a_second_half_that_could_not_start_is_started_by_the_settle_reminder_once(v3):
    order = parked(v3)
    v3.fail("start_workflow")
    order.call("decide", {"decision": "approve", "approver": "ann"})
    assert "order-saga-o-1-decided" not in v3.started and order.stored()["parked"]
    order.fire(SETTLE_REMINDER)
    assert started_second_half(v3)["outcome"] == "approve"
    order.fire(SETTLE_REMINDER)
    assert v3.calls.count("start_workflow") == 2


def test_a_start_that_went_through_before_a_stop_is_not_an_error(v3):
    class AlreadyExists(Exception):
        def code(self):
            class Code:
                name = "ALREADY_EXISTS"
            return Code()

    order = parked(v3)

    async def exists(name, workflow_input, instance_id):
        raise AlreadyExists()
    v3.start_workflow = exists
    order.call("decide", {"decision": "approve", "approver": "ann"})
    assert order.stored()["saga_instance_id"] == "order-saga-o-1-decided"
