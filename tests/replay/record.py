"""Record the workflow histories the replay check replays: `make replay-record`.

Starts an embedded stack of its own, runs every saga path (and a retry) through the public API,
then fetches each instance's history from the real runtime (the workflow API's
GetInstanceHistory) and writes it to tests/replay/histories/<workflow>/<version>/<path>.json.
Recordings of a version are kept as long as that version is registered: a new version adds
recordings beside the old ones, it does not replace them.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from google.protobuf.json_format import MessageToDict

from order_service import orders_pb2 as pb
from order_service.sidecar import Sidecar, started_version
from ordersaga.client import TERMINAL, SagaClient
from ordersaga.stack.stack import Stack

HISTORIES = Path(__file__).parent / "histories"
LARGE = 150_000  # above the approval threshold


@dataclass
class SagaPath:
    name: str
    run: Callable[[SagaClient, str], None]  # (client, order id); ends with the order terminal
    retry: bool = False  # also record the order's retry workflow


def _place(client: SagaClient, order_id: str, price: int = 1_250, quantity: int = 1, sku: str = "") -> None:
    client.orders().PlaceOrder(pb.PlaceOrderRequest(order_id=order_id, customer_id=f"c-{order_id}", items=[
        pb.LineItem(sku=sku or f"s-{order_id}", quantity=quantity, unit_price_cents=price)]), timeout=30)


def _stocked(client: SagaClient, order_id: str, on_hand: int = 10) -> None:
    client.set_stock(f"s-{order_id}", on_hand)


def completed(client, order_id):
    _stocked(client, order_id)
    _place(client, order_id)


def approved(client, order_id):
    _stocked(client, order_id)
    _place(client, order_id, LARGE)
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, approver="recorder")


def rejected(client, order_id):
    _stocked(client, order_id)
    _place(client, order_id, LARGE)
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, decision="reject", approver="recorder")


def approval_timeout(client, order_id):
    _stocked(client, order_id)
    _place(client, order_id, LARGE)  # the recorder's stack times approvals out after 5 s


def cancelled(client, order_id):
    _stocked(client, order_id)
    _place(client, order_id, LARGE)
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.orders().CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="recorder"), timeout=30)


def out_of_stock(client, order_id):
    _stocked(client, order_id, on_hand=0)
    _place(client, order_id)


def payment_declined(client, order_id):
    _stocked(client, order_id)
    client.set_credit(f"c-{order_id}", 100)
    _place(client, order_id)


def shipping_failed(client, order_id):
    _stocked(client, order_id)
    client.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment",))
    try:
        _place(client, order_id)
        client.wait_for_status(order_id, TERMINAL, timeout=120)
    finally:
        client.clear_faults("shipping-service")


def needs_attention_then_retried(client, order_id):
    _stocked(client, order_id)
    client.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment", "CancelShipment"))
    try:
        _place(client, order_id)
        client.wait_for_status(order_id, "NEEDS_ATTENTION", timeout=120)
    finally:
        client.clear_faults("shipping-service")
    client.orders().RetryOrder(pb.RetryOrderRequest(order_id=order_id, operator="recorder"), timeout=30)
    client.wait_for_status(order_id, "FAILED", timeout=120)


PATHS = [
    SagaPath("completed", completed),
    SagaPath("approved", approved),
    SagaPath("rejected", rejected),
    SagaPath("approval-timeout", approval_timeout),
    SagaPath("cancelled-at-approval", cancelled),
    SagaPath("out-of-stock", out_of_stock),
    SagaPath("payment-declined", payment_declined),
    SagaPath("shipping-failed", shipping_failed),
    SagaPath("needs-attention-then-retried", needs_attention_then_retried, retry=True),
]


def history(client: SagaClient, instance_id: str) -> list[dict]:
    port = client.state.app_ports("order-service")[0].dapr_grpc
    events = Sidecar("127.0.0.1", port, client.state.api_token).workflow_history(instance_id)
    if not started_version(events):
        raise RuntimeError(f"{instance_id} records no workflow version: is the workflow registered as versioned?")
    return [MessageToDict(event) for event in events]


def version_of(events: list[dict]) -> str:
    return next(e["workflowStarted"]["version"]["name"] for e in events
                if e.get("workflowStarted", {}).get("version", {}).get("name"))


def write(path_name: str, instance_id: str, events: list[dict], keep: str = "") -> Path:
    """Write one recording. `keep`: a recording of this workflow version that is there already
    (another saga version's, e.g. a retry of a v2 order) stays, and this one goes beside it,
    named `<path>.<keep>.json`: recordings of a registered version are never replaced."""
    started = next(e["executionStarted"] for e in events if "executionStarted" in e)
    workflow, version = started["name"], version_of(events)
    target = HISTORIES / workflow / version / f"{path_name}.json"
    if keep and target.exists() and json.loads(target.read_text()).get("instance_id") != instance_id:
        target = target.with_name(f"{path_name}.{keep}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"path": path_name, "workflow": workflow, "version": version,
                                  "instance_id": instance_id, "events": events}, indent=1) + "\n")
    return target


def record(client: SagaClient) -> list[Path]:
    run = time.strftime("%H%M%S")
    written = []
    for path in PATHS:
        order_id = f"replay-{path.name}-{run}"
        print(f"  {path.name} ...", flush=True)
        path.run(client, order_id)
        order = client.wait_for_status(order_id, TERMINAL, timeout=120)
        main_id = f"order-saga-{order_id}"
        client.wait_for_saga(order_id, instance_id=main_id)
        events = history(client, main_id)
        written.append(write(path.name, main_id, events))
        # The workflow that ended the order when it is not the saga itself: a parked order's
        # second half (order_saga_decided, from v3 on), or a retry.
        last = order["saga_instance_id"]
        if last and last != main_id:
            client.wait_for_saga(order_id, instance_id=last)
            name = f"{path.name}.retry" if path.retry else path.name
            written.append(write(name, last, history(client, last), keep=f"from-{version_of(events)}"))
    written.append(record_bulk_action(client, run))
    return written


def record_bulk_action(client: SagaClient, run: str) -> Path:
    """A bulk cancel of two parked orders (order_service/bulk.py's workflow)."""
    print("  bulk-cancel ...", flush=True)
    customer = f"c-replay-bulk-{run}"
    orders = [f"replay-bulk-cancel-{n}-{run}" for n in range(2)]
    for order_id in orders:
        _stocked(client, order_id)
        client.orders().PlaceOrder(pb.PlaceOrderRequest(order_id=order_id, customer_id=customer, items=[
            pb.LineItem(sku=f"s-{order_id}", quantity=1, unit_price_cents=LARGE)]), timeout=30)
    for order_id in orders:
        client.wait_for_status(order_id, "AWAITING_APPROVAL")
    started = client.orders().StartBulkAction(pb.BulkActionRequest(
        action="cancel", filter=pb.OrderFilter(customer_id=customer), operator="recorder", note="recorder",
        confirm_count=len(orders), rate_per_s=50), timeout=60)
    for order_id in orders:
        client.wait_for_status(order_id, "CANCELLED", timeout=120)
    client.wait_for_saga(orders[0], instance_id=started.bulk_id)
    return write("bulk-cancel", started.bulk_id, history(client, started.bulk_id))


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="ordersaga-replay-"))
    stack = Stack(scratch / ".ordersaga", tie_to_parent=True, log=lambda m: print(m, file=sys.stderr, flush=True),
                  extra_env={"ORDERSAGA_APPROVAL_TIMEOUT_S": "5", "ORDERSAGA_STEP_TIMEOUT_S": "10"})
    try:
        stack.up(profile="embedded")
        print("Recording workflow histories:", flush=True)
        written = record(SagaClient(stack.state()))
    finally:
        stack.down()
        shutil.rmtree(scratch, ignore_errors=True)
    for target in written:
        print(f"  wrote {target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target}")
    print(f"{len(written)} histories recorded; `make test` replays them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
