"""Fault injection exists only where the deployment turns it on (ORDERSAGA_FAULT_INJECTION=on):
off, a service's app has neither the Faults service nor its interceptor, and `ordersaga
faults` says so. Served here by a real gRPC server on 127.0.0.1, without a sidecar."""

from __future__ import annotations

import os
import socket

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from apphost import faults_pb2, faults_pb2_grpc
from apphost import server as apphost
from apphost.faults import SERVICE_NAME as FAULTS_SERVICE
from ordersaga import cli
from ordersaga.stack.layout import Ports, StackState
from ordersaga.stack.processes import ProcessRecord, proc_start_time
from shipping_service import shipping_pb2, shipping_pb2_grpc

SHIPPING = shipping_pb2.DESCRIPTOR.services_by_name["ShippingService"]


class Shipping(shipping_pb2_grpc.ShippingServiceServicer):
    def GetShipment(self, request, context):
        return shipping_pb2.Shipment(order_id="o-1", tracking_number="TRK-1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def served(monkeypatch):
    """serve(fault_injection) -> the port of a shipping app built as `python -m shipping_service`
    builds it (apphost.service_app), health and reflection included."""
    monkeypatch.delenv("APP_API_TOKEN", raising=False)
    apps = []  # kept: an App that is collected stops its server

    def serve(fault_injection: bool) -> int:
        app, names = apphost.service_app(SHIPPING, Shipping(), shipping_pb2_grpc.add_ShippingServiceServicer_to_server,
                                         ["CreateShipment", "CancelShipment", "GetShipment"], fault_injection)
        apphost.add_health_and_reflection(app, names)
        port = free_port()
        app._server.add_insecure_port(f"127.0.0.1:{port}")
        app._server.start()
        apps.append(app)
        return port

    yield serve
    for app in apps:
        app._server.stop(0)


def services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_off_unless_turned_on():
    assert apphost.fault_injection_enabled({}) is False
    assert apphost.fault_injection_enabled({"ORDERSAGA_FAULT_INJECTION": "off"}) is False
    assert apphost.fault_injection_enabled({"ORDERSAGA_FAULT_INJECTION": "on"}) is True
    with pytest.raises(ValueError, match="must be on or off"):
        apphost.fault_injection_enabled({"ORDERSAGA_FAULT_INJECTION": "yes"})  # a typo does not silently mean off


def test_off_the_app_has_no_faults_service_nor_interceptor(served):
    port = served(fault_injection=False)
    assert FAULTS_SERVICE not in services(port)
    assert SHIPPING.full_name in services(port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            faults_pb2_grpc.FaultsStub(channel).Set(faults_pb2.FaultSettings(error_rate=1.0), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        reply = shipping_pb2_grpc.ShippingServiceStub(channel).GetShipment(
            shipping_pb2.ShipmentRef(idempotency_key="o-1:ship"), timeout=10)
    assert reply.tracking_number == "TRK-1"


def test_on_faults_are_set_and_applied(served):
    port = served(fault_injection=True)
    assert FAULTS_SERVICE in services(port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        faults_pb2_grpc.FaultsStub(channel).Set(
            faults_pb2.FaultSettings(error_rate=1.0, methods=["GetShipment"]), timeout=10)
        with pytest.raises(grpc.RpcError) as injected:
            shipping_pb2_grpc.ShippingServiceStub(channel).GetShipment(
                shipping_pb2.ShipmentRef(idempotency_key="o-1:ship"), timeout=10)
    assert injected.value.code() == grpc.StatusCode.UNAVAILABLE


def _stack_serving(tmp_path, monkeypatch, shipping_port: int) -> None:
    """A stack.json whose shipping-service app listens on `shipping_port`, with one "running"
    sidecar (this process), as `ordersaga` finds it."""
    state = StackState(tmp_path, Ports.allocate(1))
    state.ports.apps["shipping-service"][0].app_grpc = shipping_port
    state.processes["order-service-daprd"] = ProcessRecord("order-service-daprd", os.getpid(),
                                                           proc_start_time(os.getpid()), "", "sidecar")
    state.save()
    monkeypatch.setenv("ORDERSAGA_HOME", str(tmp_path))


def test_the_cli_says_fault_injection_is_off(served, tmp_path, monkeypatch, capsys):
    _stack_serving(tmp_path, monkeypatch, served(fault_injection=False))
    for argv in (["faults", "shipping", "--error-rate", "1"], ["faults", "shipping-service", "--clear"]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 1, err
        assert "fault injection is off in this deployment" in err and "shipping-service" in err
        assert "ORDERSAGA_FAULT_INJECTION=on" in err


def test_the_cli_sets_faults_where_it_is_on(served, tmp_path, monkeypatch, capsys):
    _stack_serving(tmp_path, monkeypatch, served(fault_injection=True))
    assert cli.main(["faults", "shipping", "--error-rate", "0.5", "--method", "CreateShipment"]) == 0
    assert "error rate 0.50" in capsys.readouterr().out


def test_a_service_serves_what_its_environment_says(monkeypatch):
    """run_service (each service's composition root calls it) reads the setting; unset means
    off, as in the image and the Helm chart by default; a bad value stops the app at start."""
    served = []
    monkeypatch.setattr(apphost, "run", lambda app_id, app, names: served.append(names))

    def names_with(value: str | None) -> list[str]:
        if value is None:
            monkeypatch.delenv("ORDERSAGA_FAULT_INJECTION", raising=False)
        else:
            monkeypatch.setenv("ORDERSAGA_FAULT_INJECTION", value)
        apphost.run_service("shipping-service", SHIPPING, Shipping(),
                            shipping_pb2_grpc.add_ShippingServiceServicer_to_server, ["CreateShipment"])
        return served.pop()

    assert names_with(None) == [SHIPPING.full_name]
    assert names_with("off") == [SHIPPING.full_name]
    assert names_with("on") == [SHIPPING.full_name, FAULTS_SERVICE]
    with pytest.raises(ValueError, match="ORDERSAGA_FAULT_INJECTION must be on or off"):
        names_with("maybe")
    assert not served
