"""apphost.faults: the global settings, and rules that fault some orders' calls only."""

from __future__ import annotations

import time
from types import SimpleNamespace

import grpc
import pytest

from apphost import faults_pb2
from apphost.faults import FaultInjector

METHODS = {"/payment.v1.PaymentService/Capture", "/payment.v1.PaymentService/Void"}


class Aborted(Exception):
    pass


class Context:
    def abort(self, code, details):
        raise Aborted(code, details)


def call(injector: FaultInjector, method: str, key: str):
    """Runs one call through the interceptor: (what the handler saw, seconds it took)."""
    seen = []

    def handler(request, context):
        seen.append(request.idempotency_key)
        return "reply"

    continuation = lambda details: grpc.unary_unary_rpc_method_handler(handler)  # noqa: E731
    wrapped = injector.intercept_service(continuation, SimpleNamespace(method=f"/payment.v1.PaymentService/{method}"))
    started = time.monotonic()
    try:
        reply = wrapped.unary_unary(SimpleNamespace(idempotency_key=key), Context())
    except Aborted as aborted:
        reply = aborted.args[0]
    return reply, seen, time.monotonic() - started


def test_a_rule_faults_only_the_calls_of_its_orders():
    injector = FaultInjector(METHODS)
    injector.Set(faults_pb2.FaultSettings(rules=[
        faults_pb2.FaultRule(key_prefix="o-late:", methods=["Capture"], delay_after_seconds=0.2),
        faults_pb2.FaultRule(key_prefix="o-err:", error_rate=1.0)]), Context())
    reply, seen, took = call(injector, "Capture", "o-late:payment")
    assert (reply, seen) == ("reply", ["o-late:payment"]) and took >= 0.2  # done, then answered late
    assert call(injector, "Void", "o-late:payment")[2] < 0.1  # the rule names Capture only
    assert call(injector, "Capture", "o-other:payment")[2] < 0.1
    reply, seen, _ = call(injector, "Void", "o-err:payment")
    assert reply == grpc.StatusCode.UNAVAILABLE and seen == []  # refused before the work


def test_a_matching_rule_replaces_the_global_faults_for_its_orders():
    injector = FaultInjector(METHODS)
    injector.Set(faults_pb2.FaultSettings(error_rate=1.0, rules=[faults_pb2.FaultRule(key_prefix="o-1:")]), Context())
    assert call(injector, "Capture", "o-1:payment")[0] == "reply"
    assert call(injector, "Capture", "o-2:payment")[0] == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("rule", [faults_pb2.FaultRule(error_rate=2), faults_pb2.FaultRule(delay_seconds=-1),
                                  faults_pb2.FaultRule(methods=["Nope"])])
def test_a_bad_rule_is_refused_and_changes_nothing(rule):
    injector = FaultInjector(METHODS)
    with pytest.raises(Aborted) as refused:
        injector.Set(faults_pb2.FaultSettings(rules=[rule]), Context())
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert injector.Get(None, Context()) == faults_pb2.FaultSettings()


def test_two_rules_for_one_order_give_each_method_its_own_delay():
    injector = FaultInjector(METHODS)
    injector.Set(faults_pb2.FaultSettings(delay_seconds=5, rules=[
        faults_pb2.FaultRule(key_prefix="o-1:", methods=["Capture"], delay_seconds=0.3),
        faults_pb2.FaultRule(key_prefix="o-1:", methods=["Void"], delay_seconds=0.1)]), Context())
    assert 0.3 <= call(injector, "Capture", "o-1:payment")[2] < 1
    assert 0.1 <= call(injector, "Void", "o-1:payment")[2] < 0.3


def test_a_rule_with_times_faults_only_its_first_calls():
    injector = FaultInjector(METHODS)
    injector.Set(faults_pb2.FaultSettings(error_rate=1.0, rules=[
        faults_pb2.FaultRule(key_prefix="o-1:", methods=["Capture"], error_rate=1.0, times=2)]), Context())
    answers = [call(injector, "Capture", "o-1:payment")[0] for _ in range(4)]
    assert answers == [grpc.StatusCode.UNAVAILABLE] * 2 + ["reply"] * 2  # then neither it nor the global faults
