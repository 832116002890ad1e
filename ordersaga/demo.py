"""`make demo`: one order down each saga path on the real stack, each timeline printed.

Orders go through the public gRPC API, approvals through pub/sub, faults through the services'
admin API. Starts the stack when it is not running and stops it again at the end (it leaves
the stack as it found it). Exit code 0 only when every path ended as expected.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from order_service import orders_pb2 as pb
from ordersaga.cli_orders import print_order
from ordersaga.client import TERMINAL, FaultInjectionOff, SagaClient
from ordersaga.stack.layout import run_dir_from_env
from ordersaga.stack.stack import Stack

LARGE = 150_000  # cents: above the default 1000.00 approval threshold


@dataclass
class Path:
    title: str
    expect: str
    run: Callable[[SagaClient, str, str, str], None]  # (client, order id, sku, customer)


def place(client: SagaClient, order_id: str, customer: str, sku: str, quantity: int, price_cents: int) -> None:
    client.orders().PlaceOrder(pb.PlaceOrderRequest(
        order_id=order_id, customer_id=customer,
        items=[pb.LineItem(sku=sku, quantity=quantity, unit_price_cents=price_cents)]), timeout=30)


def _completed(client, order_id, sku, customer):
    client.set_stock(sku, 10)
    place(client, order_id, customer, sku, 2, 1_250)


def _approved(client, order_id, sku, customer):
    client.set_stock(sku, 10)
    place(client, order_id, customer, sku, 1, LARGE)
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, approver="demo-manager")


def _rejected(client, order_id, sku, customer):
    client.set_stock(sku, 10)
    place(client, order_id, customer, sku, 1, LARGE)
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, decision="reject", approver="demo-manager", reason="over budget")


def _out_of_stock(client, order_id, sku, customer):
    client.set_stock(sku, 1)
    place(client, order_id, customer, sku, 3, 1_000)


def _payment_declined(client, order_id, sku, customer):
    client.set_stock(sku, 10)
    client.set_credit(customer, 2_000)  # 20.00 of credit for a 50.00 order
    place(client, order_id, customer, sku, 5, 1_000)


def _shipping_failure(client, order_id, sku, customer):
    client.set_stock(sku, 10)
    client.set_faults("shipping-service", error_rate=1.0, methods=("CreateShipment",))
    try:
        place(client, order_id, customer, sku, 1, 2_500)
        client.wait_for_status(order_id, TERMINAL, timeout=120)
    finally:
        client.clear_faults("shipping-service")


PATHS = [
    Path("completed", "COMPLETED", _completed),
    Path("approval approved", "COMPLETED", _approved),
    Path("approval rejected", "FAILED", _rejected),
    Path("out of stock", "FAILED", _out_of_stock),
    Path("payment declined", "FAILED", _payment_declined),
    Path("shipping failure, compensated", "FAILED", _shipping_failure),
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--kube"]:
        return main_kube(argv[1:])
    stack = Stack(run_dir_from_env(), log=lambda m: print(m, file=sys.stderr, flush=True))
    # A stack with anything running is someone's: use it as it is (the client goes through any
    # live sidecar) and leave it running. Otherwise start one (ORDERSAGA_PROFILE picks the
    # profile) for the demo only, and stop it at the end.
    someone_elses = any(p["running"] for p in stack.status()["processes"].values())
    if not someone_elses:
        stack.tie_to_parent = True  # never outlive the demo
        stack.up()
    status = stack.status()
    print(f"Demo on the {status['profile']} profile, {status['replicas']} replica(s) per app", flush=True)
    try:
        return run_paths(SagaClient(stack.state()))
    finally:
        if not someone_elses:
            stack.down()


def main_kube(argv: list[str]) -> int:
    """`python -m ordersaga.demo --kube [--namespace N]`: the same paths against the system deployed
    on Kubernetes (ordersaga/kube.py), which it leaves running."""
    from ordersaga import kube

    namespace = argv[1] if argv[:1] == ["--namespace"] and len(argv) > 1 else kube.DEFAULT_NAMESPACE
    print(f"Demo on Kubernetes, namespace {namespace}", flush=True)
    try:
        return run_paths(kube.kube_client(namespace))
    except kube.KubeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_paths(client: SagaClient) -> int:
    run = uuid.uuid4().hex[:6]
    ok = 0
    skipped = []
    started = time.monotonic()
    for number, path in enumerate(PATHS, 1):
        slug = path.title.split(",")[0].replace(" ", "-")
        order_id = f"demo-{run}-{slug}"
        print(f"\n[{number}/{len(PATHS)}] {path.title}", flush=True)
        try:
            path.run(client, order_id, f"sku-{run}-{number}", f"customer-{run}-{number}")
        except FaultInjectionOff as error:  # a deployment without the Faults API (Kubernetes' default)
            skipped.append(path.title)
            print(f"  -> skipped: {error}", flush=True)
            continue
        client.wait_for_status(order_id, TERMINAL, timeout=120)
        client.wait_for_saga(order_id)
        order = client.orders().GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=30)
        print_order(order)
        passed = order.status == path.expect
        ok += passed
        print(f"  -> {'as expected' if passed else 'UNEXPECTED, wanted ' + path.expect}", flush=True)
    elapsed = time.monotonic() - started
    print(f"\nDemo finished: {ok}/{len(PATHS)} saga paths ended as expected in {elapsed:.1f}s."
          + (f" Skipped (fault injection off): {', '.join(skipped)}." if skipped else ""))
    return 0 if ok + len(skipped) == len(PATHS) else 1


if __name__ == "__main__":
    sys.exit(main())
