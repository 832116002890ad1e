"""Admission control's count of sagas at work (order_service/admission.py)."""

from __future__ import annotations

from order_service.admission import Admission
from order_service.domain import OrderStatus


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
