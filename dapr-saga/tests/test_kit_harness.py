"""The harness itself: the virtual clock, events, fakes, real activities, determinism, versions,
replay, and the check of the SDK's private names."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import dapr.ext.workflow as wf
import dapr_saga
import pytest
from dapr_saga.testing import Harness, _sdk, current_call, fails, hangs, late, raises, replay, sequence
from pydantic import BaseModel

ONCE = wf.RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=5, backoff_coefficient=2)


class Ask(BaseModel):
    who: str


def waits_a_day(ctx, _):
    decision = ctx.wait_for_external_event("decision")
    timer = ctx.create_timer(timedelta(days=1))
    winner = yield wf.when_any([decision, timer])
    return "timed out" if winner is timer else decision.get_result()


def calls_twice(ctx, who):
    first = yield ctx.call_activity("greet", input=Ask(who=who), retry_policy=ONCE)
    second = yield ctx.call_activity("greet", input=Ask(who=who.upper()), retry_policy=ONCE)
    return [first, second]


def greet(ctx, ask: Ask) -> str:
    return f"hello {ask.who}"


async def greet_async(ctx, ask: Ask) -> str:
    await asyncio.sleep(0)
    return f"hi {ask.who}"


def register(runtime, greeter=greet):
    dapr_saga.register(runtime, [dapr_saga.Workflow("wait", [("v1", waits_a_day)]),
                                 dapr_saga.Workflow("twice", [("v1", calls_twice), ("v2", calls_twice)])],
                       {"greet": greeter})


def test_a_one_day_timer_is_skipped_on_the_virtual_clock():
    run = Harness(register).run("wait")
    assert run.result == "timed out"
    assert run.now - run.harness.start_time == timedelta(days=1) and run.turns == 2  # nothing waited for it


def test_an_event_raised_before_the_timer_wins_and_one_raised_before_the_wait_is_kept():
    run = Harness(register).start("wait")
    run.advance(timedelta(hours=3)).raise_event("decision", "yes").finish()
    assert run.result == "yes" and run.now - run.harness.start_time == timedelta(hours=3)
    late_event = Harness(register).start("wait").raise_event("decision", "no", after=timedelta(days=2)).finish()
    assert late_event.result == "timed out"


def test_real_activities_run_as_the_worker_runs_them_sync_or_async_with_their_model():
    assert Harness(register).run("twice", "ann").result == ["hello ann", "hello ANN"]
    assert Harness(lambda rt: register(rt, greet_async)).run("twice", "bo").result == ["hi bo", "hi BO"]


def test_fakes_get_the_model_the_activity_declares_and_know_their_call_and_attempt():
    seen = []

    def greeter(ask):
        seen.append((type(ask).__name__, current_call().call, current_call().attempt))
        return ask.who
    assert Harness(register, {"greet": greeter}).run("twice", "x").result == ["x", "X"]
    assert seen == [("Ask", 1, 1), ("Ask", 2, 1)]


def test_a_fake_that_fails_n_attempts_is_retried_by_the_workflows_own_policy():
    run = Harness(register, {"greet": fails(attempts=3, then="ok")}).run("twice", "x")
    assert run.result == ["ok", "ok"]
    assert [c.attempts for c in run.calls] == [4, 1]
    assert run.now - run.harness.start_time == timedelta(seconds=1 + 2 + 4)  # the policy's backoff


def test_a_call_that_fails_for_good_fails_the_workflow_and_says_why():
    run = Harness(register, {"greet": fails(calls=1, error=ValueError("bad input"))}).run("twice", "x")
    assert run.status == "FAILED" and "bad input" in run.failure
    assert run.calls[0].attempts == 5 and run.calls[0].outcome == "failed"


def test_sequence_late_raises_and_hangs():
    assert Harness(register, {"greet": sequence(RuntimeError("1"), "b", "c")}).run("twice", "x").result == ["b", "c"]
    slow = Harness(register, {"greet": late(timedelta(minutes=5), "slow")}).run("twice", "x")
    assert slow.result == ["slow", "slow"] and slow.now - slow.harness.start_time == timedelta(minutes=10)
    assert Harness(register, {"greet": raises(KeyError("k"))}).run("twice", "x").status == "FAILED"
    with pytest.raises(AssertionError, match="never happen.*greet"):
        Harness(register, {"greet": hangs()}).run("twice", "x")


def test_runs_are_deterministic():
    def history(run):
        return [e for e in run.history_json()]
    one = Harness(register, {"greet": fails(attempts=2, then="ok")}).run("twice", "x")
    two = Harness(register, {"greet": fails(attempts=2, then="ok")}).run("twice", "x")
    assert history(one) == history(two)


def test_code_that_is_not_deterministic_fails_as_it_would_in_production():
    def flaky(ctx, _):
        name = random.choice(["greet", "other"])  # replayed every turn: a different call each time
        yield ctx.call_activity(name, input=Ask(who="x"))
        yield ctx.call_activity(name, input=Ask(who="y"))
        return "done"

    def reg(runtime):
        dapr_saga.register(runtime, [dapr_saga.Workflow("flaky", [("v1", flaky)])],
                           {"greet": greet, "other": greet})
    random.seed(3)
    statuses = {Harness(reg).run("flaky").status for _ in range(8)}
    assert "FAILED" in statuses


def test_a_run_starts_on_the_version_asked_and_stalls_on_one_not_registered():
    assert Harness(register).run("twice", "x").version == "v2"
    assert Harness(register).run("twice", "x", version="v1").version == "v1"
    assert Harness(register).run("twice", "x", version="v9").status == "STALLED"


def test_a_saved_run_replays_and_a_change_is_found_turn_by_turn(tmp_path):
    saved = Harness(register).run("twice", "x").save(tmp_path / "twice.json")
    assert replay(saved, register).ok

    def other_input(ctx, who):
        first = yield ctx.call_activity("greet", input=Ask(who=who), retry_policy=ONCE)
        second = yield ctx.call_activity("greet", input=Ask(who=who.lower()), retry_policy=ONCE)
        return [first, second]

    def changed(runtime):
        dapr_saga.register(runtime, [dapr_saga.Workflow("twice", [("v1", other_input), ("v2", other_input)])],
                           {"greet": greet})
    replayed = replay(saved, changed)
    assert replayed.same_end is False or replayed.departures
    assert "greet" in replayed.departures[0] and '"x"' in replayed.departures[0]
    assert replay(saved, changed, inputs=False).departures == []  # names only, as the SDK compares


def test_registering_twice_in_one_process_is_fine():
    Harness(register)
    Harness(register)
    dapr_saga.register(_sdk.new_runtime(), [dapr_saga.Workflow("twice", [("v1", calls_twice)])], {"greet": greet})
    dapr_saga.register(_sdk.new_runtime(), [dapr_saga.Workflow("twice", [("v1", calls_twice)])], {"greet": greet})


def test_a_private_sdk_name_that_is_gone_fails_with_what_to_change(monkeypatch):
    monkeypatch.setitem(_sdk.REQUIRED, ("dapr.ext.workflow._durabletask.worker", "_Gone"), "something it needs")
    with pytest.raises(_sdk.SdkChanged, match=r"_Gone.*something it needs.*dapr_saga/testing/_sdk.py"):
        _sdk._resolve("dapr.ext.workflow._durabletask.worker", "_Gone")
    with pytest.raises(_sdk.SdkChanged, match="registry"):
        _sdk.registry_of(object())


def test_a_saved_failure_carries_no_stack_trace(tmp_path):
    # A trace names where the fake raised on the machine that recorded it: recordings are committed.
    run = Harness(register, {"greet": fails(attempts=2, then="ok")}).run("twice", "x")
    assert any("stackTrace" in str(event) for event in run.history_json())
    saved = run.save(tmp_path / "failed-once.json")
    assert "stackTrace" not in saved.read_text() and str(tmp_path.parent) not in saved.read_text()
    assert replay(saved, register).ok
