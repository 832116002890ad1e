from order_service.decisions import needs_approval, reservation_failure
from order_service.messages import StepResult

OK = StepResult(ok=True)
SHORT = StepResult(ok=False, reason="OUT_OF_STOCK")
DECLINED = StepResult(ok=False, reason="PAYMENT_DECLINED")
UNKNOWN = StepResult(ok=False, unknown=True, reason="TIMEOUT")


def batch(*parts: StepResult) -> StepResult:
    return StepResult.batch(list(parts))


def test_business_answers_win_over_unknown_ones():
    assert reservation_failure(batch(UNKNOWN, SHORT), OK) == "OUT_OF_STOCK"
    assert reservation_failure(batch(OK), DECLINED) == "PAYMENT_DECLINED"
    assert reservation_failure(batch(SHORT), DECLINED) == "OUT_OF_STOCK"
    assert reservation_failure(batch(UNKNOWN), OK) == "INVENTORY_UNAVAILABLE"
    assert reservation_failure(batch(OK), UNKNOWN) == "PAYMENT_UNAVAILABLE"
    assert reservation_failure(batch(OK, OK), OK) is None


def test_a_batch_that_failed_as_a_whole_is_unknown():
    failed = StepResult(ok=False, unknown=True, reason="ERROR")  # no parts: the activity itself failed
    assert reservation_failure(failed, OK) == "INVENTORY_UNAVAILABLE"


def test_the_threshold_itself_needs_approval():
    assert needs_approval(100_000, 100_000) and not needs_approval(99_999, 100_000)
