"""`make demo`: run one order down each saga path on the real stack and print its timeline.

Starts the stack when it is not running and stops it again at the end (it leaves the stack as
it found it). Exit code 0 only when every path ended as expected.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from ordersaga.client import SagaClient
from ordersaga.stack.layout import run_dir_from_env
from ordersaga.stack.stack import Stack

LARGE = 150_000  # cents: above the default 1000.00 approval threshold


@dataclass
class Path:
    title: str
    expect: str
    run: Callable[[SagaClient, str, str], None]  # (client, order id, sku)


def _completed(client: SagaClient, order_id: str, sku: str) -> None:
    client.set_stock(sku, 10)
    client.place(order_id, "demo-alice", [(sku, 2, 1_250)])


def _approved(client: SagaClient, order_id: str, sku: str) -> None:
    client.set_stock(sku, 10)
    client.place(order_id, "demo-bob", [(sku, 1, LARGE)])
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, approver="demo-manager")


def _rejected(client: SagaClient, order_id: str, sku: str) -> None:
    client.set_stock(sku, 10)
    client.place(order_id, "demo-carol", [(sku, 1, LARGE)])
    client.wait_for_status(order_id, "AWAITING_APPROVAL")
    client.approve(order_id, decision="reject", approver="demo-manager")


def _out_of_stock(client: SagaClient, order_id: str, sku: str) -> None:
    client.set_stock(sku, 1)
    client.place(order_id, "demo-dave", [(sku, 3, 1_000)])


PATHS = [
    Path("completed", "COMPLETED", _completed),
    Path("approval approved", "COMPLETED", _approved),
    Path("approval rejected", "FAILED", _rejected),
    Path("out of stock", "FAILED", _out_of_stock),
]


def print_timeline(order: dict) -> None:
    reason = f" ({order['reason']})" if order.get("reason") else ""
    print(f"\n{order['request']['order_id']}: {order['status']}{reason}")
    print(f"  {'at':<12} {'step':<10} {'outcome':<10} detail")
    for entry in order["timeline"]:
        at = entry["at"][11:23]  # time of day, to the millisecond
        print(f"  {at:<12} {entry['step']:<10} {entry['outcome']:<10} {entry.get('detail', '')}")


def main() -> int:
    stack = Stack(run_dir_from_env(), log=lambda m: print(m, file=sys.stderr, flush=True))
    was_running = stack.status()["running"]
    if not was_running:
        stack.tie_to_parent = True  # started for the demo only: never outlive it
        stack.up()
    try:
        return run_paths(SagaClient(stack.state()))
    finally:
        if not was_running:
            stack.down()


def run_paths(client: SagaClient) -> int:
    run = uuid.uuid4().hex[:6]
    ok = 0
    started = time.monotonic()
    for path in PATHS:
        order_id = f"demo-{run}-{path.title.replace(' ', '-')}"
        path.run(client, order_id, f"demo-sku-{run}-{path.title.split()[0]}")
        order = client.wait_for_status(order_id, {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"})
        print_timeline(order)
        passed = order["status"] == path.expect
        ok += passed
        print(f"  -> {path.title}: {'as expected' if passed else 'UNEXPECTED, wanted ' + path.expect}")
    print(f"\nDemo finished: {ok}/{len(PATHS)} saga paths ended as expected in {time.monotonic() - started:.1f}s.")
    return 0 if ok == len(PATHS) else 1


if __name__ == "__main__":
    sys.exit(main())
