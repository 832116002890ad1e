"""Admission control's count of sagas at work (order_service/admission.py)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from order_service import activities
from order_service import admission as admission_module
from order_service.activities import ServiceUnavailable
from order_service.admission import Admission
from order_service.domain import OrderStatus
from order_service.messages import OrderUpdate, ShipmentCall, StepRecord


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_orders_count_while_at_work_and_not_while_parked_or_ended():
    admission = Admission(limit=2, clock=Clock())
    admission.note("o-1", OrderStatus.PLACED)
    admission.note("o-2", OrderStatus.RESERVING)
    assert admission.at_work() == 2
    assert "2 sagas are at work" in admission.refusal() and "retry in about 500 ms" in admission.refusal()
    admission.note("o-1", OrderStatus.AWAITING_APPROVAL)  # parked: costs nothing
    admission.note("o-1", OrderStatus.AWAITING_APPROVAL)
    assert admission.at_work() == 1 and admission.refusal() is None
    admission.note("o-1", OrderStatus.CHARGING)  # approved: at work again
    admission.note("o-2", OrderStatus.COMPLETED)
    admission.note("o-2", OrderStatus.COMPLETED)
    assert admission.at_work() == 1


def test_an_order_not_heard_of_for_a_while_is_forgotten():
    clock = Clock()
    admission = Admission(limit=1, forget_after_s=60, clock=clock)
    admission.note("o-1", OrderStatus.SHIPPING)  # its actor then moved to another replica
    assert admission.refusal()
    clock.now += 61
    assert admission.at_work() == 0 and admission.refusal() is None


def test_no_limit_admits_everything():
    admission = Admission(limit=0)
    for n in range(100):
        admission.note(f"o-{n}", OrderStatus.PLACED)
    assert admission.refusal() is None


# ---- a shipping outage does not stop intake (issue 22) ----------------------------------------

class ShippingDown:
    """Every shipment call fails (`faults shipping-service --error-rate 1`); it notes how many
    sagas were at work while each attempt ran."""

    def __init__(self, admission: Admission):
        self.admission, self.at_work_during_calls = admission, []

    def CreateShipment(self, request, **kwargs):
        async def fail():
            self.at_work_during_calls.append(self.admission.at_work())
            raise AioRpcError(grpc.StatusCode.UNAVAILABLE, Metadata(), Metadata(), "fault injected")
        return fail()


class ActorSidecar:
    """The order's actor as the gate sees it: it takes the move to SHIPPING (and tells admission,
    as OrderActor._save does)."""

    def __init__(self, admission: Admission):
        self.admission = admission

    def metadata(self, *pairs):
        return tuple(pairs)

    async def call_actor_async(self, actor_type, actor_id, method, data=None, timeout=30):
        for record in data["records"]:
            if record.get("status"):
                self.admission.note(actor_id, OrderStatus(record["status"]))
        return {"cancel_requested": False}


@pytest.fixture()
def outage(monkeypatch):
    admission = Admission(limit=8, clock=Clock())
    monkeypatch.setattr(admission_module, "_admission", admission)
    shipping = ShippingDown(admission)
    monkeypatch.setattr(activities, "_shipping", lambda: shipping)
    monkeypatch.setattr(activities, "sidecar", lambda: ActorSidecar(admission))
    return admission, shipping


def _shipment(order_id: str) -> ShipmentCall:
    gate = OrderUpdate(order_id=order_id, records=[StepRecord(order_id=order_id, step="ship", outcome="STARTED",
                                                               status="SHIPPING")])
    return ShipmentCall(order_id=order_id, customer_id="c-1", deadline_s=1, enter=gate)


def test_orders_retrying_their_shipment_do_not_stop_new_orders(outage):
    admission, shipping = outage
    orders = [f"o-{n}" for n in range(12)]  # more than the limit of 8
    for attempt in range(3):  # the saga's retries, each after a backoff
        for order_id in orders:
            with pytest.raises(ServiceUnavailable):
                asyncio.run(activities.create_shipment(None, _shipment(order_id)))
            # Between attempts the saga waits on a timer: it is not at work.
            assert admission.at_work() == 0
    assert admission.refusal() is None  # a new order comes in
    # A first attempt counts while it runs (the order it is for, and no resting one); a retry
    # of a step that failed does not (a call that fails at once, or waits in the sidecar's
    # retry backoff), although its gate records the same status again.
    assert shipping.at_work_during_calls == [1] * len(orders) + [0] * (2 * len(orders))


def test_a_resting_order_counts_again_at_its_next_status(outage):
    admission, _ = outage
    with pytest.raises(ServiceUnavailable):
        asyncio.run(activities.create_shipment(None, _shipment("o-1")))
    assert admission.at_work() == 0
    admission.note("o-1", OrderStatus.COMPENSATING)  # it gave up and unwinds: costs again
    assert admission.at_work() == 1


def test_sagas_at_work_still_fill_the_limit():
    admission = Admission(limit=8, clock=Clock())
    for n in range(8):
        admission.note(f"o-{n}", OrderStatus.RESERVING)
    admission.resting("o-0")
    assert admission.refusal() is None
    admission.note("o-0", OrderStatus.RESERVING)  # its retry's gate: the same status, still resting
    assert admission.refusal() is None
    admission.answered("o-0")  # the retry went through
    assert admission.refusal()
    admission.resting("o-1")
    admission.note("o-1", OrderStatus.COMPENSATING)  # it gave up and unwinds: a new status
    assert admission.at_work() == 8
    admission.resting("unknown-here")  # an order another replica counts changes nothing here
    admission.answered("unknown-here")
    assert admission.at_work() == 8
