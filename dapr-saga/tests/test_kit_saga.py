"""The saga runner on a toy domain (a shop that reserves, charges and ships), on the harness."""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
import dapr_saga
import pytest
from dapr_saga import Ending, Leftover, Rules, Saga, ServiceUnavailable, Step, StepResult, Timeline, Update
from dapr_saga.testing import Harness, hangs, late, raises
from pydantic import BaseModel

FAST = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3)
RULES = Rules(step_retry=FAST, update_retry=FAST)
OK = StepResult.done()


class Lines(BaseModel):
    """A batch: undone per part."""

    skus: list[str]

    def only(self, keep: list[bool]) -> "Lines":
        return Lines(skus=[sku for sku, k in zip(self.skus, keep) if k])


class Gated(BaseModel):
    what: str = ""
    enter: Update | None = None


RESERVE = Step("reserve", "reserve", undo="release")
CHARGE = Step("charge", "charge", undo="refund", fails_as="PAYMENT_FAILED")
SHIP = Step("ship", "ship", undo="unship", gate="SHIPPING", fails_as="SHIPPING_FAILED")
SLOW = Step("slow", "slow", undo="unslow", timeout=timedelta(seconds=30))


def shop(ctx, order: dict):
    saga = Saga(ctx, RULES, Timeline(order["id"], "record", label="order"))
    reserved, charged = yield from saga.run_parallel([RESERVE(Lines(skus=order["skus"])), CHARGE({"id": order["id"]})])
    if not reserved.ok:
        return (yield from saga.fail("OUT_OF_STOCK"))
    if order.get("approval"):
        yield from saga.enter("AWAITING_APPROVAL", "approval", announce="approval_requested")
        decision = yield from saga.wait_for_event("approval", timedelta(days=1), cancel_event="cancel")
        if decision is None:
            return (yield from saga.fail("APPROVAL_TIMEOUT", cancel_wins=True))
    if order.get("slow"):
        slow = yield from saga.run(SLOW({"id": order["id"]}))
        if not slow.ok:
            return (yield from saga.fail("TOO_SLOW"))
    shipped = yield from saga.run(SHIP(Gated(what=order["id"])))
    return (yield from saga.complete(detail=shipped.detail))


def retry(ctx, request):
    return (yield from dapr_saga.retry_workflow(RULES, "record", label="order")(ctx, request))


# The activities, as an app registers them (their bodies are the fakes' business in these tests):
# what they are declared to take is what a fake gets.
def _lines(ctx, lines: Lines) -> StepResult: ...
def _gated(ctx, gated: Gated) -> StepResult: ...
def _any(ctx, data: dict) -> StepResult: ...
def _record(ctx, update: Update) -> dapr_saga.Gate: ...


ACTIVITIES = {"reserve": _lines, "release": _lines, "ship": _gated, "unship": _gated, "record": _record,
              **{name: _any for name in ("charge", "refund", "slow", "unslow")}}


def register(runtime):
    dapr_saga.register(runtime, [dapr_saga.Workflow("shop", [("v1", shop)]),
                                 dapr_saga.Workflow("shop_retry", [("v1", retry)])], ACTIVITIES)


def services(**overrides):
    def per_sku(answer):
        return lambda lines: StepResult.batch([answer(sku).model_copy(update={"name": sku}) for sku in lines.skus])
    base = {name: (lambda _: OK) for name in ("charge", "refund", "unship", "slow", "unslow")}
    base.update(record=lambda update: dapr_saga.Gate(), reserve=per_sku(lambda sku: OK),
                release=per_sku(lambda sku: OK), ship=lambda gated: StepResult.done("TRK-1"))
    base.update(overrides)
    return base


def run(order: dict, events=(), **fakes):
    return Harness(register, services(**fakes)).run("shop", {"id": "o-1", "skus": ["a", "b"], **order}, events=events)


def notes(r):
    return [(n.step, n.outcome) for c in r.called("record") for n in c.input.notes] + \
        [(n.step, n.outcome) for c in r.calls if isinstance(c.input, Gated) and c.input.enter
         for n in c.input.enter.notes]


def statuses(r):
    return [n.status for c in r.called("record") for n in c.input.notes if n.status]


def test_a_saga_that_goes_through_completes_and_notes_each_step_in_few_updates():
    r = run({})
    assert r.result == "COMPLETED"
    assert r.activities() == ["reserve", "charge", "ship", "record"]
    assert ("reserve a", "DONE") in notes(r) and ("complete", "COMPLETED") in notes(r)
    assert r.called("ship")[0].input.enter.notes[-1].status == "SHIPPING"  # the gate carries the notes so far
    assert r.called("record")[0].input.event.type == "completed"


def test_a_failure_compensates_in_reverse_and_only_what_needs_it():
    short = StepResult.no("OUT_OF_STOCK")
    r = run({}, reserve=lambda lines: StepResult.batch([short if s == "a" else OK.model_copy(update={"name": s})
                                                        for s in lines.skus]))
    assert r.result == "FAILED"
    assert r.activities() == ["reserve", "charge", "record", "refund", "release", "record"]
    assert r.called("release")[0].input.skus == ["b"]  # a said no: nothing to release there
    assert statuses(r) == ["COMPENSATING", "FAILED"]


def test_a_parallel_group_waits_for_every_part_even_when_one_fails():
    r = run({}, charge=raises(ServiceUnavailable("bank away")), reserve=late(timedelta(seconds=20), lambda lines:
                                                                             StepResult.batch([OK] * len(lines.skus))))
    assert r.result == "FAILED"  # fails_as: a charge that may not have happened
    assert r.called("charge")[0].attempts == 3  # the rules' step retry
    assert [n for n in notes(r) if n[0].startswith("reserve")]  # the reservation was waited for, noted, undone
    assert r.activities()[-3:] == ["refund", "release", "record"]


def test_an_unknown_outcome_is_undone_and_a_definite_no_is_not():
    r = run({}, charge=lambda _: StepResult.maybe("TIMEOUT"))
    assert "refund" in r.activities()
    r = run({}, charge=lambda _: StepResult.no("DECLINED"))
    assert "refund" not in r.activities() and "release" in r.activities()


def test_an_undo_that_keeps_failing_leaves_it_to_do_and_a_retry_finishes_it():
    r = run({}, ship=raises(ServiceUnavailable("down")), unship=raises(ServiceUnavailable("down")))
    assert r.result == "NEEDS_ATTENTION"
    last = r.called("record")[-1].input
    assert [c.activity for c in last.leftover.calls] == ["unship"]
    assert (last.leftover.ending.status, last.leftover.ending.reason) == ("FAILED", "SHIPPING_FAILED")
    request = dapr_saga.RetryRequest(entity_id="o-1", leftover=last.leftover, attempt=1, retried_by="ann")
    again = Harness(register, services()).run("shop_retry", request)
    assert again.result == "FAILED" and again.activities() == ["record", "unship", "record"]
    assert all(n.key.startswith("retry 1: ") for c in again.called("record") for n in c.input.notes)


def test_an_entity_that_refuses_a_gated_step_unwinds_the_saga_as_cancelled():
    r = run({}, ship=lambda gated: StepResult.refused())
    assert r.result == "CANCELLED"
    assert r.activities()[-4:] == ["unship", "refund", "release", "record"]  # an earlier attempt may have passed
    assert r.called("unship")[0].input.enter is None  # an undo passes no gate


def test_an_event_a_timeout_or_a_cancel_ends_the_wait():
    approve = [("approval", {"ok": True})]
    assert run({"approval": True}, events=approve).result == "COMPLETED"
    timed_out = run({"approval": True})
    assert timed_out.result == "FAILED" and timed_out.now - timed_out.harness.start_time >= timedelta(days=1)
    assert run({"approval": True}, events=[("cancel", {})]).result == "CANCELLED"


def test_a_cancel_the_entity_took_first_beats_the_timeout():
    def record(update):
        return dapr_saga.Gate(cancel_requested=any(n.status == "COMPENSATING" for n in update.notes))
    assert run({"approval": True}, record=record).result == "CANCELLED"


def test_a_step_with_a_timeout_that_answers_late_is_unknown_and_undone():
    r = run({"slow": True}, slow=late(timedelta(minutes=5), OK))
    assert r.result == "FAILED"
    assert "unslow" in r.activities()
    assert [n for n in notes(r) if n == ("slow", "UNKNOWN")]


def test_a_step_that_hangs_without_a_timeout_is_reported():
    harness = Harness(register, services(ship=hangs()))
    started = harness.start("shop", {"id": "o-1", "skus": ["a"]})
    with pytest.raises(AssertionError, match="can never happen.*ship"):
        started.finish()


def test_a_bug_in_a_step_is_a_fault_undone_and_left_to_a_person():
    r = run({}, ship=raises(KeyError("nope")))
    assert r.result == "NEEDS_ATTENTION"
    last = r.called("record")[-1].input
    assert last.leftover.ending.reason == dapr_saga.INTERNAL_ERROR
    assert "KeyError" in last.notes[-1].detail
    assert r.called("ship")[0].attempts == 3


def test_an_entity_that_never_takes_a_status_change_stops_the_saga_and_the_ending_is_left_as_custom_status():
    r = run({"approval": True}, record=raises(ServiceUnavailable("entity away")))
    assert r.result == "NEEDS_ATTENTION"
    left = Update.model_validate_json(r.custom_status)
    assert [n.status for n in left.notes if n.status] == ["AWAITING_APPROVAL", "COMPENSATING", "NEEDS_ATTENTION"]
    assert "ship" not in r.activities()


def test_an_event_the_broker_refused_is_noted_and_the_saga_goes_on():
    def record(update):
        if update.event:
            raise dapr_saga.EventNotPublished("broker away")
        return dapr_saga.Gate()
    r = run({}, record=record)
    assert r.result == "COMPLETED"
    assert ("event completed", "UNPUBLISHED") in notes(r)


def test_rules_behind_a_patch_apply_only_to_sagas_that_take_it():
    patched = Rules(step_retry=FAST, update_retry=FAST, faults_patch="faults")

    def strict(ctx, order):
        saga = Saga(ctx, patched, Timeline(order["id"], "record"))
        yield from saga.run(SHIP(Gated()))
        return (yield from saga.complete())

    def reg(runtime):
        dapr_saga.register(runtime, [dapr_saga.Workflow("strict", [("v1", strict)])], ACTIVITIES)
    bug = services(ship=raises(KeyError("nope")))
    assert Harness(reg, bug).run("strict", {"id": "o"}).result == "NEEDS_ATTENTION"
    before = Harness(reg, bug).run("strict", {"id": "o"}, without_patches={"faults"})
    assert before.status == "COMPLETED" and before.result == "FAILED"  # the old rule: unknown, so undone
    assert "faults" in Harness(reg, bug).run("strict", {"id": "o"}).patches


def test_leave_records_what_is_left_and_the_ending():
    def past_return(ctx, order):
        saga = Saga(ctx, RULES, Timeline(order["id"], "record"))
        done = yield from saga.run(RESERVE(Lines(skus=["a"])))
        if not done.ok:
            return (yield from saga.leave("left", [RESERVE(Lines(skus=["a"]))],
                                          Ending(status="COMPLETED", tracking_number="T"), resume_status="SHIPPING"))
        return "?"

    def reg(runtime):
        dapr_saga.register(runtime, [dapr_saga.Workflow("past", [("v1", past_return)])], ACTIVITIES)
    r = Harness(reg, services(reserve=raises(ServiceUnavailable("x")))).run("past", {"id": "o"})
    left = Leftover.model_validate(r.called("record")[-1].input.leftover.model_dump())
    assert left.calls[0].input == {"skus": ["a"]} and left.ending.model_dump()["tracking_number"] == "T"
