from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

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


# Figures the tests measure (takeover time, recovery after a broker kill...), printed together
# at the end of the run: pytest hides what a passing test prints.
_MEASURED = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_MEASURED] = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_MEASURED, [])
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture()
def measured(request):
    """`measured("failover: ...")` records a figure for the summary at the end of the run."""
    def record(line: str) -> None:
        request.config.stash[_MEASURED].append(f"{request.node.name}: {line}")
        print(line)
    return record


def pytest_addoption(parser):
    parser.addoption("--chaos-soak", action="store_true",
                     help="chaos: several rounds of every kill, with more orders in flight (long)")
    parser.addoption("--fuzz-minutes", type=float, default=0.0,
                     help="fuzz: run the long profile of tests/fuzz for about this many minutes (0: the quick one)")
    parser.addoption("--fuzz-seed", type=int, default=None,
                     help="fuzz: the seed to replay (printed at the end of every run); default: a new one")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)
        if "/fuzz/" in str(item.fspath):
            item.add_marker(pytest.mark.fuzz)


# ---- the real stacks, shared by the e2e, chaos and production tests ---------------------------
# One stack per profile per test session, started when a test first needs it: the embedded one
# (daprd, placement, scheduler, NATS, SQLite, the four apps) and the production one (PostgreSQL,
# Kafka, two replicas of every app). Each is torn down even when a test fails, and its processes
# are tied to the test process, so a pytest killed outright leaves nothing behind either.

APPROVAL_TIMEOUT_S = 60  # longer than a scheduler restart stalls workflows (~25 s)
ORDER_DEADLINE_S = 12
PRODUCTION_REPLICAS = 2
# Short enough that the timeout and deadline paths run within the suite.
TEST_SETTINGS = {
    "ORDERSAGA_APPROVAL_THRESHOLD": "1000",
    "ORDERSAGA_APPROVAL_TIMEOUT_S": str(APPROVAL_TIMEOUT_S),
    "ORDERSAGA_ORDER_DEADLINE_S": str(ORDER_DEADLINE_S),
    "ORDERSAGA_STEP_TIMEOUT_S": "15",
    # `list --stuck` in the suite's time (it only lists and counts: nothing is changed by it).
    "ORDERSAGA_STUCK_AFTER_S": "5",
}


def _log(message: str) -> None:
    print(message, flush=True)


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory) -> Stack:
    stack = Stack(tmp_path_factory.mktemp("stack") / ".ordersaga", tie_to_parent=True, log=_log,
                  extra_env=TEST_SETTINGS)
    try:
        stack.up(timeout=120, profile="embedded")
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def production_stack() -> Stack:
    # PostgreSQL refuses to run as root, so under root it runs as the `postgres` user, which
    # cannot enter pytest's private temp folder (mode 0700): a folder of its own, reachable.
    scratch = Path(tempfile.mkdtemp(prefix="ordersaga-production-"))
    scratch.chmod(0o711)
    stack = Stack(scratch / ".ordersaga", tie_to_parent=True, log=_log, extra_env=TEST_SETTINGS)
    try:
        stack.up(timeout=180, profile="production", replicas=PRODUCTION_REPLICAS)
        yield stack
    finally:
        stack.down()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def observe_stack(tmp_path_factory) -> Stack:
    """An embedded stack started with `--observe` (Zipkin, metrics endpoints, the console) and
    JSON logs: the observability tests (traces, metrics, `top`, the console) share it."""
    stack = Stack(tmp_path_factory.mktemp("observe") / ".ordersaga", tie_to_parent=True, log=_log,
                  extra_env=dict(TEST_SETTINGS, ORDERSAGA_LOG_FORMAT="json"))
    try:
        stack.up(timeout=120, profile="embedded", observe=True)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(embedded_stack) -> Stack:
    """The stack most tests use: the embedded profile (the saga paths run on both)."""
    return embedded_stack


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
