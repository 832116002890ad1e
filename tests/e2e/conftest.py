"""One real stack per test session (daprd, placement, scheduler, NATS, the four apps).

It is torn down even when a test fails, and its processes are tied to the test process, so
a pytest killed outright leaves nothing behind either.
"""

from __future__ import annotations

import uuid

import pytest

from ordersaga.stack.stack import Stack
from ordersaga.client import SagaClient


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    run_dir = tmp_path_factory.mktemp("stack") / ".ordersaga"
    stack = Stack(
        run_dir,
        tie_to_parent=True,
        log=lambda message: print(message, flush=True),
        extra_env={"ORDERSAGA_APPROVAL_THRESHOLD": "1000", "ORDERSAGA_APPROVAL_TIMEOUT_S": "86400"},
    )
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


@pytest.fixture()
def saga(stack) -> SagaClient:
    return SagaClient(stack.state())


@pytest.fixture()
def order_id(request) -> str:
    """A fresh order id per test, readable in the logs."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("_", "-").replace("[", "-").replace("]", "")
