import pytest
from pydantic import ValidationError

from order_service.domain import MAX_LINES, OrderRequest, OrderStatus, saga_instance_id


def order(**overrides):
    data = {"order_id": "o-1", "customer_id": "c-1",
            "items": [{"sku": "apple", "quantity": 2, "unit_price_cents": 150}]}
    data.update(overrides)
    return data


def error_fields(data) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        OrderRequest.model_validate(data)
    return {".".join(map(str, e["loc"])) for e in caught.value.errors()}


def test_total_is_integer_cents():
    request = OrderRequest.model_validate(order(items=[
        {"sku": "a", "quantity": 3, "unit_price_cents": 199},
        {"sku": "b", "quantity": 1, "unit_price_cents": 1},
    ]))
    assert request.total_cents == 598


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"items": []}, "items"),
        ({"items": [{"sku": "a", "quantity": 0, "unit_price_cents": 1}]}, "items.0.quantity"),
        ({"items": [{"sku": "a", "quantity": 1, "unit_price_cents": -5}]}, "items.0.unit_price_cents"),
        ({"order_id": "has space"}, "order_id"),
        ({"order_id": ""}, "order_id"),
        ({"customer_id": "x" * 65}, "customer_id"),
        ({"items": [{"sku": f"s{i}", "quantity": 1, "unit_price_cents": 1} for i in range(MAX_LINES + 1)]}, "items"),
    ],
)
def test_invalid_orders_name_the_field(overrides, field):
    assert field in error_fields(order(**overrides))


def test_a_sku_appears_on_one_line_only():
    twice = [{"sku": "a", "quantity": 1, "unit_price_cents": 1}] * 2
    assert "items" in error_fields(order(items=twice))


def test_terminal_statuses():
    assert {s for s in OrderStatus if s.terminal} == {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


def test_saga_instance_id_is_derived_from_the_order_id():
    assert saga_instance_id("o-1") == saga_instance_id("o-1") != saga_instance_id("o-2")
