"""Orders placed by publishing on `order-requests` through any sidecar (DESIGN.md): the same order
again changes nothing, other content under the same id and invalid requests go to
`order-requests-deadletter` with the reason, and requests published while order-service is down
are placed once it is back. On both profiles."""

from __future__ import annotations

import json
import time

import pytest

from order_service.topics import REQUESTS_DEAD_LETTER_TOPIC, REQUESTS_TOPIC
from ordersaga.eventfeed import feed_for
from ordersaga.stack.layout import APPS, replica_name
from tests.helpers.invariants import check_invariants

PRICE = 1_250


@pytest.fixture(params=["embedded", "production"])
def stack(request):
    return request.getfixturevalue(f"{request.param}_stack")


def request_for(order_id: str, customer: str, sku: str, quantity: int = 1) -> dict:
    return {"order_id": order_id, "customer_id": customer,
            "items": [{"sku": sku, "quantity": quantity, "unit_price_cents": PRICE}]}


def publish(saga, data: dict | bytes, via: str = "inventory-service", content_type: str = "application/json"):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    saga.publish(REQUESTS_TOPIC, body, content_type=content_type, via=via)


def dead_letters(stack, marker: str, count: int) -> list[dict]:
    """The dead letters naming `marker`, once at least `count` are there (0: what is there now)."""
    bodies = feed_for(stack.state()).read_all(REQUESTS_DEAD_LETTER_TOPIC, lambda b: marker in b, count, timeout=60)
    return [json.loads(body)["data"] for body in bodies]


def test_the_same_request_three_times_places_one_order(stack, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    for via in ("inventory-service", "payment-service", "shipping-service"):
        publish(saga, request_for(order_id, customer, sku, 2), via=via)
    order = saga.wait_for_status(order_id, "COMPLETED")
    assert [e["step"] for e in order["timeline"]].count("place") == 1
    check_invariants(saga, {sku: 10}, [order_id])  # stock taken once, charged once
    assert dead_letters(stack, order_id, 0) == [], "a duplicate is not a refusal"


def test_other_content_under_an_existing_id_is_dead_lettered_with_the_reason(stack, saga, ids):
    order_id, sku, customer = ids("o"), ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    publish(saga, request_for(order_id, customer, sku, 1))
    saga.wait_for_status(order_id, "COMPLETED")
    publish(saga, request_for(order_id, customer, sku, 5))
    (letter,) = dead_letters(stack, order_id, 1)
    assert letter["reason"].startswith("ALREADY_EXISTS: order")
    assert json.loads(letter["data"])["items"][0]["quantity"] == 5  # the refused request, as it came
    assert saga.get(order_id)["request"]["items"][0]["quantity"] == 1, "the order is unchanged"
    check_invariants(saga, {sku: 10}, [order_id])


def test_malformed_and_oversized_requests_are_dead_lettered_and_place_nothing(stack, saga, ids):
    marker = ids("bad")
    too_many = [{"sku": f"{marker}-{n}", "quantity": 1, "unit_price_cents": 1} for n in range(101)]
    bad = {
        "not json": (f"{marker} is not json".encode(), "text/plain", "data is not JSON"),
        "no items": ({"order_id": f"{marker}-1", "customer_id": "c", "items": []}, None, "items"),
        "bad id": ({"order_id": f"{marker} 2", "customer_id": "c", "items": too_many[:1]}, None, "order_id"),
        "negative": (request_for(f"{marker}-3", "c", "apple", -1), None, "quantity"),
        "too many lines": ({"order_id": f"{marker}-4", "customer_id": "c", "items": too_many}, None, "items"),
        "huge id": ({"order_id": f"{marker}-" + "x" * 200_000, "customer_id": "c", "items": too_many[:1]}, None,
                    "order_id"),
    }
    for data, content_type, _ in bad.values():
        publish(saga, data, content_type=content_type or "application/json")
    letters = dead_letters(stack, marker, len(bad))
    assert len(letters) == len(bad), [letter["reason"] for letter in letters]
    for name, (_, _, says) in bad.items():
        assert any(says in letter["reason"] for letter in letters), f"{name}: no dead letter saying {says!r}"
    assert all(len(letter["data"]) <= 4096 for letter in letters)
    for n in (1, 3, 4):
        assert saga.get(f"{marker}-{n}") is None, "a refused request must not create an order"


@pytest.mark.timeout(300)
def test_requests_published_while_order_service_is_down_are_placed_when_it_is_back(stack, saga, ids):
    sku, customer = ids("sku"), ids("c")
    saga.set_stock(sku, 10)
    order_ids = [ids("o") for _ in range(3)]
    state = stack.state()
    for index in range(state.replicas):  # every replica, app and sidecar
        stack.kill(replica_name("order-service", index))
        stack.kill(f"{replica_name('order-service', index)}-daprd")
    try:
        for order_id in order_ids:
            publish(saga, request_for(order_id, customer, sku))
        time.sleep(2)
    finally:
        stack.up(timeout=120)
    for order_id in order_ids:
        saga.wait_for_status(order_id, "COMPLETED", timeout=120)
    check_invariants(saga, {sku: 10}, order_ids)
    assert set(APPS) <= set(stack.status()["apps"])
