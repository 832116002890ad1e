"""A client closes every channel it opened, those of the actor path included (the k8s suite's
client closes and reopens them when its port-forward moves to another pod)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from order_service.sidecar import ActorCallError
from ordersaga.client import SagaClient
from ordersaga.kube import KubeSagaClient
from ordersaga.stack.layout import APPS, AppPorts, Ports, StackState


def a_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def state_with_no_sidecar(tmp_path: Path) -> StackState:
    port = a_closed_port()
    infra = {name: 0 for name in Ports.__dataclass_fields__ if name != "apps"}
    apps = {app: [AppPorts(app_grpc=0, dapr_grpc=port, dapr_http=0, dapr_internal_grpc=0)] for app in APPS}
    return StackState(run_dir=tmp_path, ports=Ports(**infra, apps=apps), api_token="t", app_token="", processes={})


@pytest.mark.parametrize("client_class", [SagaClient, KubeSagaClient])
def test_close_closes_the_actor_path_and_the_service_channels(tmp_path, client_class):
    client = client_class(state_with_no_sidecar(tmp_path))
    with pytest.raises(ActorCallError):
        client.get("o-1")  # nothing listens: the actor path's channel is made, the call refused
    client._service_channel()
    assert len(client._channels) == 2
    client.close()
    assert client._channels == {}
    client.close()  # twice is harmless
