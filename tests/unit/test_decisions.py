from order_service.decisions import must_undo, needs_approval, reservation_failure
from order_service.messages import StepResult

OK = StepResult(ok=True)
SHORT = StepResult(ok=False, reason="OUT_OF_STOCK")
DECLINED = StepResult(ok=False, reason="PAYMENT_DECLINED")
UNKNOWN = StepResult(ok=False, unknown=True, reason="TIMEOUT")


def test_business_answers_win_over_unknown_ones():
    assert reservation_failure([UNKNOWN, SHORT], OK) == "OUT_OF_STOCK"
    assert reservation_failure([OK], DECLINED) == "PAYMENT_DECLINED"
    assert reservation_failure([SHORT], DECLINED) == "OUT_OF_STOCK"
    assert reservation_failure([UNKNOWN], OK) == "INVENTORY_UNAVAILABLE"
    assert reservation_failure([OK], UNKNOWN) == "PAYMENT_UNAVAILABLE"
    assert reservation_failure([OK, OK], OK) is None


def test_only_a_definite_no_is_left_alone():
    assert must_undo(OK) and must_undo(UNKNOWN)
    assert not must_undo(SHORT)


def test_the_threshold_itself_needs_approval():
    assert needs_approval(100_000, 100_000) and not needs_approval(99_999, 100_000)
