"""What steps answer, and how the kit reads it."""

from dapr_saga import StepResult

OK = StepResult.done()
SHORT = StepResult.no("OUT_OF_STOCK")
UNKNOWN = StepResult.maybe("TIMEOUT")


def test_a_batch_is_ok_only_when_every_part_is():
    assert StepResult.batch([OK, OK]).ok
    assert not StepResult.batch([OK, UNKNOWN]).ok and StepResult.batch([OK, UNKNOWN]).unknown
    assert StepResult.batch([OK, SHORT]).reason == "OUT_OF_STOCK" and not StepResult.batch([OK, SHORT]).unknown


def test_only_a_definite_no_is_left_alone():
    assert OK.must_undo and UNKNOWN.must_undo and StepResult.refused().must_undo
    assert not SHORT.must_undo


def test_the_timeline_names_each_outcome():
    assert [r.outcome for r in (OK, SHORT, UNKNOWN, StepResult.refused(), StepResult(ok=False))] == [
        "DONE", "OUT_OF_STOCK", "UNKNOWN", "CANCELLED", "FAILED"]
