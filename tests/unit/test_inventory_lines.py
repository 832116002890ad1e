"""inventory-service's all-lines calls (ReserveLines, ReleaseLines, CommitLines) on an in-memory
store with the same ETag rules as the real one: all lines or none, once per key."""

from __future__ import annotations

import grpc
import pytest

from inventory_service import inventory_pb2 as pb
from inventory_service.server import InventoryServicer
from tests.helpers.memory_store import Aborted, Context, MemoryStore


@pytest.fixture()
def inventory():
    servicer = InventoryServicer(MemoryStore("inventory-store"))
    for sku, on_hand in (("a", 5), ("b", 1)):
        servicer.SetStock(pb.SetStockRequest(sku=sku, on_hand=on_hand), Context())
    return servicer


def levels(inventory):
    return {sku: (s.on_hand, s.reserved) for sku in ("a", "b")
            for s in [inventory.GetStock(pb.GetStockRequest(sku=sku), Context())]}


def reserve(inventory, key, *lines):
    request = pb.ReserveLinesRequest(idempotency_key=key, lines=[pb.Line(sku=s, quantity=q) for s, q in lines])
    return inventory.ReserveLines(request, Context())


def test_every_line_is_reserved_in_one_transaction(inventory):
    before = inventory._store.transactions
    reply = reserve(inventory, "o-1:reserve", ("a", 2), ("b", 1))
    assert reply.done and [(o.sku, o.done) for o in reply.lines] == [("a", True), ("b", True)]
    assert inventory._store.transactions == before + 1
    assert levels(inventory) == {"a": (5, 2), "b": (1, 1)}


def test_a_short_line_reserves_nothing_and_names_the_short_line(inventory):
    reply = reserve(inventory, "o-1:reserve", ("a", 2), ("b", 2))
    assert not reply.done and reply.reason == "OUT_OF_STOCK"
    assert [(o.sku, o.reason) for o in reply.lines] == [("a", "NOT_RESERVED"), ("b", "OUT_OF_STOCK")]
    assert levels(inventory) == {"a": (5, 0), "b": (1, 0)}
    # The answer is kept: a repeat gets it even if stock arrived meanwhile.
    inventory.SetStock(pb.SetStockRequest(sku="b", on_hand=9), Context())
    assert not reserve(inventory, "o-1:reserve", ("a", 2), ("b", 2)).done


def test_a_repeat_changes_nothing(inventory):
    reserve(inventory, "o-1:reserve", ("a", 2))
    assert reserve(inventory, "o-1:reserve", ("a", 2)).done
    assert levels(inventory)["a"] == (5, 2)


def test_release_and_commit_act_once_on_every_line(inventory):
    ref = pb.ReservationRef(idempotency_key="o-1:reserve")
    reserve(inventory, "o-1:reserve", ("a", 2), ("b", 1))
    inventory.CommitLines(ref, Context())
    inventory.CommitLines(ref, Context())
    assert levels(inventory) == {"a": (3, 0), "b": (0, 0)}
    reserve(inventory, "o-2:reserve", ("a", 1))
    ref2 = pb.ReservationRef(idempotency_key="o-2:reserve")
    assert inventory.ReleaseLines(ref2, Context()).done
    assert inventory.ReleaseLines(ref2, Context()).done
    assert levels(inventory) == {"a": (3, 0), "b": (0, 0)}
    with pytest.raises(Aborted) as refused:
        inventory.CommitLines(ref2, Context())
    assert refused.value.args[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_a_release_before_the_reservation_leaves_a_tombstone_the_late_reservation_respects(inventory):
    assert inventory.ReleaseLines(pb.ReservationRef(idempotency_key="o-1:reserve"), Context()).done
    reply = reserve(inventory, "o-1:reserve", ("a", 1))
    assert not reply.done and reply.reason == "RELEASED"
    assert levels(inventory)["a"] == (5, 0)


@pytest.mark.parametrize("lines, message", [
    ((), "at least one line"), ((("", 1),), "needs a sku"), ((("a", 0),), "quantity must be positive"),
    ((("a", 1), ("a", 2)), "one line only"),
])
def test_bad_requests_are_refused(inventory, lines, message):
    with pytest.raises(Aborted) as refused:
        reserve(inventory, "o-1:reserve", *lines)
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT and message in refused.value.args[1]
