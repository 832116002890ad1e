"""The CLI and the demo against ordersaga on Kubernetes (`ordersaga --kube [--namespace N] ...`).

The same client as for a local stack (ordersaga/client.py), pointed at one sidecar of the
deployed system: `kubectl port-forward` to order-service's pod, daprd's HTTP (3500) and gRPC
(50001) ports, on ports of 127.0.0.1 the kernel picks. The Dapr API token comes from the Secret
the chart was given (the Deployment's `dapr.io/api-token-secret` annotation names it). Which
cluster: kubectl's own rules ($KUBECONFIG, else ~/.kube/config), except that the local cluster of
`make k8s-up` is used when it runs and KUBECONFIG is unset. kubectl: the one on the PATH, else
the one the local cluster built.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ordersaga.client import FaultInjectionOff, SagaClient
from ordersaga.stack.layout import APPS, AppPorts, Ports, StackState
from ordersaga.stack.processes import _die_with_parent as die_with_parent

APP_PORT = 50051  # the chart's appPort: the apps' own gRPC server (the Faults service is there)
DAPR_HTTP_PORT = 3500
DAPR_GRPC_PORT = 50001
DEFAULT_NAMESPACE = "ordersaga"


class KubeError(RuntimeError):
    """The deployed system cannot be reached; the message says why."""


def kubectl_base() -> list[str]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        from ordersaga.cluster import build

        built = build.output_dir(build.KUBERNETES) / "kubectl"
        if not built.is_file():
            raise KubeError("kubectl is not on the PATH (and no local cluster built one): install kubectl")
        kubectl = str(built)
    argv = [kubectl]
    if not os.environ.get("KUBECONFIG"):
        from ordersaga.cluster.node import run_dir_from_env

        local = run_dir_from_env() / "kubeconfig"
        if local.is_file():
            argv.append(f"--kubeconfig={local}")
    return argv


def _kubectl(namespace: str, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run([*kubectl_base(), "-n", namespace, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise KubeError(f"kubectl {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def api_token(namespace: str) -> str:
    """The Dapr API token of the deployment (empty when the chart was installed without one)."""
    secret = _kubectl(namespace, "get", "deployment", "order-service", "-o",
                      r"jsonpath={.spec.template.metadata.annotations.dapr\.io/api-token-secret}").strip()
    if not secret:
        return ""
    encoded = _kubectl(namespace, "get", "secret", secret, "-o", "jsonpath={.data.token}").strip()
    return base64.b64decode(encoded).decode()


class PortForward:
    """`kubectl port-forward` to a sidecar, stopped by pid when the process exits (or by `close`)."""

    def __init__(self, namespace: str, target: str = "deployment/order-service",
                 remote_ports: tuple[int, ...] = (DAPR_HTTP_PORT, DAPR_GRPC_PORT)):
        self.namespace, self.target, self.remote_ports = namespace, target, remote_ports
        self.log = tempfile.NamedTemporaryFile(prefix="ordersaga-port-forward-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [*kubectl_base(), "-n", namespace, "port-forward", "--address", "127.0.0.1", target,
             *(f":{port}" for port in remote_ports)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)  # even a CLI or test killed outright leaves no forward behind
        atexit.register(self.close)
        self.ports = self._wait_ports()

    def _wait_ports(self, timeout: float = 60) -> dict[int, int]:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = Path(self.log.name).read_text(errors="replace")
            found = {int(remote): int(local) for local, remote in
                     re.findall(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", text)}
            if all(port in found for port in self.remote_ports):
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.close()
        raise KubeError(f"kubectl port-forward to {self.namespace}/{self.target} did not start: {text.strip()[-800:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self.log.name).unlink(missing_ok=True)


def kube_state(namespace: str = DEFAULT_NAMESPACE) -> tuple[StackState, PortForward]:
    """A StackState whose every app resolves to the forwarded sidecar: the client needs no more."""
    forward = PortForward(namespace)
    http, grpc_port = forward.ports[DAPR_HTTP_PORT], forward.ports[DAPR_GRPC_PORT]
    infra = {name: 0 for name in Ports.__dataclass_fields__ if name != "apps"}
    ports = Ports(**infra, apps={app: [AppPorts(app_grpc=0, dapr_grpc=grpc_port, dapr_http=http,
                                                dapr_internal_grpc=0)] for app in APPS})
    state = StackState(run_dir=Path(tempfile.gettempdir()), ports=ports, api_token=api_token(namespace),
                       app_token="", processes={})
    return state, forward


class KubeSagaClient(SagaClient):
    """SagaClient whose fault settings reach every pod of an app: each app's own gRPC port
    (50051, the Faults service), port-forwarded pod by pod, with the app token from its Secret."""

    namespace: str = DEFAULT_NAMESPACE
    _forward: PortForward | None = None

    def _ports(self, app_id: str, only: bool = False) -> AppPorts:
        """The forwarded sidecar, order-service's (so the services' access control admits every
        call); a forward whose pod went away (deleted, rolled) is made anew, to another pod."""
        if self._forward is not None and not self._forward.alive():
            self._forward.close()
            state, self._forward = kube_state(self.namespace)
            self.state = state
            SagaClient.close(self)  # channels to the old forward
        return super()._ports(app_id, only)

    def close(self) -> None:
        if self._forward is not None:
            self._forward.close()
        super().close()

    def set_faults(self, app_id: str, error_rate: float = 0.0, delay_seconds: float = 0.0,
                   methods: tuple[str, ...] = (), delay_after_seconds: float = 0.0):
        import grpc

        from apphost import faults_pb2, faults_pb2_grpc

        settings = faults_pb2.FaultSettings(error_rate=error_rate, delay_seconds=delay_seconds, methods=list(methods),
                                            delay_after_seconds=delay_after_seconds)
        token = app_token(self.namespace, app_id)
        pods = _kubectl(self.namespace, "get", "pods", "-l", f"app.kubernetes.io/name={app_id}",
                        "--field-selector=status.phase=Running", "-o", "name").split()
        replies = []
        for pod in pods:
            forward = PortForward(self.namespace, pod, remote_ports=(APP_PORT,))
            try:
                with grpc.insecure_channel(f"127.0.0.1:{forward.ports[APP_PORT]}") as channel:
                    stub = faults_pb2_grpc.FaultsStub(channel)
                    replies.append(stub.Set(settings, metadata=(("dapr-api-token", token),), timeout=30))
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                raise FaultInjectionOff(f"fault injection is off in this deployment: {pod} serves no Faults API "
                                        "(the chart's value faultInjection turns it on)") from None
            finally:
                forward.close()
        if not replies:
            raise KubeError(f"no running pod of {app_id} in namespace {self.namespace}")
        return replies[0]


def app_token(namespace: str, app_id: str) -> str:
    secret = _kubectl(namespace, "get", "deployment", app_id, "-o",
                      r"jsonpath={.spec.template.metadata.annotations.dapr\.io/app-token-secret}").strip()
    if not secret:
        return ""
    return base64.b64decode(_kubectl(namespace, "get", "secret", secret, "-o", "jsonpath={.data.token}")).decode()


def kube_client(namespace: str = DEFAULT_NAMESPACE) -> KubeSagaClient:
    state, forward = kube_state(namespace)
    client = KubeSagaClient(state)
    client.namespace = namespace
    client._forward = forward  # lives as long as the client (and is stopped at exit)
    return client
