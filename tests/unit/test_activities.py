"""The activities' answers to a call that got no answer in time (tests run them on fake stubs):
a step that can be undone counts it unknown (the saga undoes it, a late success included); an undo,
or the commit, which nothing undoes, is retried instead (each is idempotent), so a late reply
costs a repeat, not a person's time."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from order_service import activities
from order_service.activities import ServiceUnavailable
from order_service.messages import PaymentCall, ShipmentCall, StockLine, StockLines
from order_service.sidecar import Sidecar


def late(*args, **kwargs):
    async def no_answer():
        raise AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, Metadata(), Metadata(), "Deadline Exceeded")
    return no_answer()


class LateStub:
    def __getattr__(self, method):
        return late


@pytest.fixture()
def late_services(monkeypatch):
    for stub in ("_inventory", "_payments", "_shipping"):
        monkeypatch.setattr(activities, stub, LateStub)
    monkeypatch.setattr(activities, "sidecar", lambda: Sidecar("127.0.0.1", 1))


PAYMENT = PaymentCall(order_id="o-1", customer_id="c-1", amount_cents=100, deadline_s=1)
SHIPMENT = ShipmentCall(order_id="o-1", customer_id="c-1", deadline_s=1)
STOCK = StockLines(order_id="o-1", deadline_s=1, lines=[StockLine(order_id="o-1", sku="a", quantity=1)])


@pytest.mark.parametrize("activity, call", [
    ("reserve_lines", STOCK), ("authorize_payment", PAYMENT), ("capture_payment", PAYMENT),
    ("create_shipment", SHIPMENT),
])
def test_a_step_without_an_answer_is_an_unknown_outcome(late_services, activity, call):
    result = asyncio.run(getattr(activities, activity)(None, call))
    assert (result.ok, result.unknown, result.reason) == (False, True, "TIMEOUT")


@pytest.mark.parametrize("activity, call", [
    ("release_lines", STOCK), ("commit_lines", STOCK), ("void_payment", PAYMENT), ("refund_payment", PAYMENT),
    ("cancel_shipment", SHIPMENT),
])
def test_an_undo_or_the_commit_without_an_answer_is_retried(late_services, activity, call):
    with pytest.raises(ServiceUnavailable, match="DEADLINE_EXCEEDED"):
        asyncio.run(getattr(activities, activity)(None, call))
