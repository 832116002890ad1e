"""Tests on the local Kubernetes (`make k8s`: up, install, these tests, down).

They drive the deployed system through its public interfaces only: gRPC and actor calls through
a port-forward to order-service's sidecar (ordersaga/kube.py, what `ordersaga --kube` uses),
approvals published through Dapr's pub/sub, kubectl and helm for what an operator does (delete
a pod, roll out a new image, uninstall). `make test` collects them but skips them: they need the
cluster, which `make k8s` (or `make k8s-up k8s-install`, then `pytest tests/k8s`) provides.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from ordersaga import kube
from ordersaga.cluster import build, install
from ordersaga.cluster.node import Node, run_dir_from_env
from ordersaga.deploytools import ensure_helm
from ordersaga.stack import processes

HERE = Path(__file__).resolve().parent
NAMESPACE = install.NAMESPACE
TEST_VALUES = HERE / "values.yaml"
# What tests/k8s/values.yaml sets; the session checks the release has it.
APPROVAL_TIMEOUT_S = 300
ORDER_REPLICAS = 2


# The files run in this order: the paths first, the faults next, uninstall last (it checks the
# order placed at the start has timed out meanwhile).
FILE_ORDER = ("test_saga_paths", "test_access_control", "test_cli", "test_pod_kill", "test_rolling_update",
              "test_uninstall")


def _rank(item) -> int:
    name = Path(str(item.fspath)).stem
    return FILE_ORDER.index(name) if name in FILE_ORDER else len(FILE_ORDER)


def pytest_collection_modifyitems(config, items):
    ours = [item for item in items if HERE in Path(str(item.fspath)).parents]
    if ours:
        others = [item for item in items if item not in ours]
        items[:] = others + sorted(ours, key=_rank)  # sorted() is stable: within a file, as written
    wanted = any(HERE == Path(arg.split("::")[0]).resolve() or HERE in Path(arg.split("::")[0]).resolve().parents
                 for arg in config.args)
    if wanted:
        return
    skip = pytest.mark.skip(reason="needs the local Kubernetes: `make k8s` runs these")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster():
    node = Node(run_dir_from_env(), log=lambda message: print(message, flush=True))
    state = node.state()
    if state is None or not state.processes or not all(processes.is_running(r) for r in state.processes.values()):
        pytest.fail(f"no local cluster runs in {node.run_dir}: `make k8s-up k8s-install` first (or `make k8s`)",
                    pytrace=False)
    return node, state


@pytest.fixture(scope="session")
def installer(cluster):
    node, state = cluster
    programs = {name: build.output_dir(module) / name for module in build.MODULES for name in module.targets}
    helm, _ = ensure_helm()
    return install.Installer(node, state, programs, helm, log=lambda message: print(message, flush=True))


@pytest.fixture(scope="session")
def kubectl(installer):
    """kubectl(*args) -> stdout, against the local cluster; fails the test with kubectl's error."""
    def run(*args: str, check: bool = True, timeout: float = 120) -> str:
        proc = installer.kubectl(*args, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {proc.stderr.strip()}", pytrace=False)
        return proc.stdout
    return run


@pytest.fixture(scope="session")
def installed(installer, kubectl):
    """ordersaga installed with the tests' values (two order-service replicas, a five-minute
    approval timeout); upgraded to them when a plain `make k8s-install` put the defaults there."""
    if kubectl("-n", NAMESPACE, "get", "deployment", "order-service", check=False).strip() == "":
        installer.create_secrets()
        installer.install_chart(extra=("--values", str(TEST_VALUES)))
    env = kubectl("-n", NAMESPACE, "get", "deployment", "order-service", "-o",
                  "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='ORDERSAGA_APPROVAL_TIMEOUT_S')].value}")
    replicas = kubectl("-n", NAMESPACE, "get", "deployment", "order-service", "-o", "jsonpath={.spec.replicas}")
    if env.strip() != str(APPROVAL_TIMEOUT_S) or replicas.strip() != str(ORDER_REPLICAS):
        installer.install_chart(extra=("--values", str(TEST_VALUES)))
    return installer


@pytest.fixture(scope="session")
def saga(installed):
    client = kube.kube_client(NAMESPACE)
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def timeout_order(saga):
    """An order placed when the session starts that nobody approves: it must time out
    (APPROVAL_TIMEOUT_S) while the other tests kill pods and roll the Deployment; the last
    file checks it."""
    from tests.k8s.paths import LARGE

    stamp = time.strftime("%H%M%S")
    order_id, sku, customer = f"k8s-timeout-{stamp}", f"sku-timeout-{stamp}", f"c-timeout-{stamp}"
    saga.set_stock(sku, 3)
    saga.place(order_id, customer, [(sku, 1, LARGE)])
    saga.wait_for_status(order_id, "AWAITING_APPROVAL", timeout=120)
    return {"order_id": order_id, "sku": sku, "placed_at": time.monotonic()}


def pods_of(kubectl, app_id: str) -> list[str]:
    """The app's pods that are not being deleted, oldest first."""
    out = kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={app_id}", "-o", "json")
    items = [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]
    return [p["metadata"]["name"] for p in sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])]


def wait_ready(kubectl, app_id: str, replicas: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = kubectl("-n", NAMESPACE, "get", "deployment", app_id, "-o", "jsonpath={.status.readyReplicas}",
                        check=False).strip()
        if ready == str(replicas):
            return
        time.sleep(2)
    pytest.fail(f"{app_id}: not {replicas} ready pods after {timeout:.0f}s", pytrace=False)


def host_pid(installer, pod: str, container: str) -> int:
    """The host pid of a container's first process, from containerd (what a crash would kill)."""
    node, state = installer.node, installer.state
    container_id = installer.kubectl(
        "-n", NAMESPACE, "get", "pod", pod, "-o",
        f"jsonpath={{.status.containerStatuses[?(@.name=='{container}')].containerID}}").stdout.strip()
    container_id = container_id.removeprefix("containerd://")
    out = subprocess.run([*node.ctr(state), "tasks", "ls"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == container_id:
            return int(fields[1])
    raise AssertionError(f"no task for container {container} of {pod} ({container_id}) in containerd")
