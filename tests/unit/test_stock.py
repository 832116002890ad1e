from inventory_service.stock import Stock


def test_reserve_holds_available_stock_only():
    stock = Stock(sku="a", on_hand=5, reserved=3)
    assert stock.available == 2
    assert stock.reserve(3) is None
    assert stock.reserve(2).reserved == 5


def test_release_and_commit_keep_conservation():
    held = Stock(sku="a", on_hand=5).reserve(2)
    assert held.release(2) == Stock(sku="a", on_hand=5, reserved=0)
    assert held.commit(2) == Stock(sku="a", on_hand=3, reserved=0)
