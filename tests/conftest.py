from __future__ import annotations

import uuid

import pytest

from ordersaga.client import SagaClient
from ordersaga.stack.runtime import RuntimeProvisionError, ensure_dapr
from ordersaga.stack.stack import Stack


def pytest_report_header(config):
    """Name the Dapr runtime the e2e tests run against, at the top of the test output."""
    try:
        dapr = ensure_dapr(log=lambda message: print(message, flush=True))
    except RuntimeProvisionError as error:
        return f"dapr: NOT AVAILABLE ({error})"
    return f"dapr: daprd {dapr.version} ({dapr.source}) from {dapr.daprd.parent.name}/"


def pytest_addoption(parser):
    parser.addoption("--chaos-soak", action="store_true",
                     help="chaos: several rounds of every kill, with more orders in flight (long)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)


# ---- the real stack, shared by the e2e and chaos tests ---------------------------------------
# One stack per test session (daprd, placement, scheduler, NATS, the four apps). It is torn down
# even when a test fails, and its processes are tied to the test process, so a pytest killed
# outright leaves nothing behind either.

APPROVAL_TIMEOUT_S = 60  # longer than a scheduler restart stalls workflows (~25 s)
ORDER_DEADLINE_S = 12


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    run_dir = tmp_path_factory.mktemp("stack") / ".ordersaga"
    stack = Stack(
        run_dir,
        tie_to_parent=True,
        log=lambda message: print(message, flush=True),
        # Short enough that the timeout and deadline paths run within the suite.
        extra_env={
            "ORDERSAGA_APPROVAL_THRESHOLD": "1000",
            "ORDERSAGA_APPROVAL_TIMEOUT_S": str(APPROVAL_TIMEOUT_S),
            "ORDERSAGA_ORDER_DEADLINE_S": str(ORDER_DEADLINE_S),
            "ORDERSAGA_STEP_TIMEOUT_S": "15",
        },
    )
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


@pytest.fixture()
def saga(stack) -> SagaClient:
    return SagaClient(stack.state())


def _fresh(request, prefix: str = "") -> str:
    name = request.node.name.removeprefix("test_")[:36]
    return f"{prefix}{name}-{uuid.uuid4().hex[:8]}".replace("_", "-").replace("[", "-").replace("]", "")


@pytest.fixture()
def order_id(request) -> str:
    """A fresh order id per test, readable in the logs."""
    return _fresh(request)


@pytest.fixture()
def ids(request):
    """Fresh ids for a test's orders, SKUs and customers: `ids("sku")`."""
    return lambda kind: _fresh(request, f"{kind}-")
