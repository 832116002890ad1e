"""order-service reaches its sidecar through order_service/sidecar.py alone, and an actor's
refusal comes back as a structured error, never as text to parse."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import grpc
import pytest
from dapr.actor.runtime._grpc_callbacks import build_invoke_error_payload

from order_service import sidecar as sidecar_module
from order_service.actor import OrderError
from order_service.sidecar import ActorCallError, _answer, _unanswered

PACKAGE = Path(sidecar_module.__file__).parent
# What makes a connection to daprd: only the sidecar module may use these.
CONNECTING = {"insecure_channel", "secure_channel", "DaprClient", "DaprWorkflowClient", "create_aio_channel",
              "urlopen", "DaprStub", "TaskHubSidecarServiceStub"}


def test_only_the_sidecar_module_makes_channels_or_clients():
    offenders = {}
    for path in PACKAGE.glob("*.py"):
        if path.name in ("sidecar.py",) or path.name.endswith("_pb2_grpc.py"):
            continue
        tree = ast.parse(path.read_text())
        names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | \
            {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | \
            {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
        if names & CONNECTING:
            offenders[path.name] = sorted(names & CONNECTING)
    assert not offenders, f"only order_service/sidecar.py reaches the sidecar: {offenders}"


def test_an_actors_refusal_comes_back_with_its_code():
    # What the SDK's actor host sends back when a method raises (dapr.actor.runtime.grpc_host).
    payload = build_invoke_error_payload(OrderError("FAILED_PRECONDITION", "order o-1 can no longer be cancelled"))
    with pytest.raises(ActorCallError) as refused:
        _answer(payload)
    assert refused.value.code == "FAILED_PRECONDITION"
    assert refused.value.message == "order o-1 can no longer be cancelled"
    assert str(refused.value) == "FAILED_PRECONDITION: order o-1 can no longer be cancelled"


def test_an_actor_that_failed_half_way_did_not_answer():
    """A method that raised anything else (its store away) is not an answer: before this module,
    a record_steps that failed so reached the saga as a Gate, as if the entries had been taken."""
    with pytest.raises(ActorCallError) as failed:
        _answer(build_invoke_error_payload(RuntimeError("state store unavailable")))
    assert failed.value.code == "UNAVAILABLE" and "state store unavailable" in failed.value.message


def test_answers_are_the_methods_json():
    assert _answer(json.dumps({"cancel_requested": True}).encode()) == {"cancel_requested": True}
    assert _answer(b"null") is None
    assert _answer(json.dumps({"message": "a field named so", "status": "PLACED"}).encode())["status"] == "PLACED"


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_a_call_that_got_no_answer_is_unavailable_and_a_malformed_one_invalid():
    unreachable = _unanswered(Refused(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    assert (unreachable.code, unreachable.message) == ("UNAVAILABLE", "UNAVAILABLE: connection refused")
    assert _unanswered(Refused(grpc.StatusCode.INVALID_ARGUMENT, "invalid actorId")).code == "INVALID_ARGUMENT"


def test_the_dapr_stub_is_built_once_per_channel_and_dropped_with_it():
    """Building a DaprStub binds every method of the API (about 1-3 ms): once per channel."""
    import asyncio

    from order_service.sidecar import Sidecar

    sidecar = Sidecar("127.0.0.1", 1)
    on_threads = sidecar._dapr(sidecar.channel())
    assert sidecar._dapr(sidecar.channel()) is on_threads

    async def on_a_loop():
        stub = sidecar._dapr(sidecar.aio_channel())
        assert sidecar._dapr(sidecar.aio_channel()) is stub and stub is not on_threads
    asyncio.run(on_a_loop())
    sidecar.close()
    assert sidecar._dapr(sidecar.channel()) is not on_threads
    sidecar.close()
