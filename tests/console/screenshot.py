"""Makes the README's screenshots of the console: `python -m tests.console.screenshot [OUT_DIR]`.

Starts a stack of its own in a temporary run directory, sends orders down several saga paths
(completed, approved, rejected, out of stock, one left waiting for approval), serves the console,
shoots the orders list and the rejected order's page (the parallel reservations and payment hold,
the approval wait, the compensation) in headless Chromium, and stops all it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ordersaga.client import SagaClient
from ordersaga.stack.layout import HOST, free_port
from ordersaga.stack.stack import Stack
from tests.console import browser as chromium

LARGE = 150_000


def orders(saga: SagaClient) -> str:
    """Orders down several paths; the id of the one whose page is shot."""
    saga.set_stock("apple", 50)
    saga.set_stock("pear", 1)
    for n in range(1, 9):
        saga.place(f"o-{100 + n}", ("alice", "bob", "carol")[n % 3], [("apple", 1 + n % 3, 250 + 25 * n)])
        time.sleep(0.3)
    saga.place("o-201", "carol", [("apple", 2, LARGE), ("pear", 1, 990)])
    saga.wait_for_status("o-201", "AWAITING_APPROVAL")
    time.sleep(1.5)  # a visible wait for the decision
    saga.approve("o-201", approver="dana")
    saga.place("o-202", "bob", [("apple", 1, 500), ("pear", 5, 990)])  # out of stock: compensation
    saga.place("o-203", "alice", [("apple", 1, LARGE)])
    saga.wait_for_status("o-203", "AWAITING_APPROVAL")
    time.sleep(1)
    saga.approve("o-203", decision="reject", approver="dana", reason="over budget")  # then compensation
    saga.place("o-204", "carol", [("apple", 3, LARGE)])  # left waiting for approval
    for order_id in ("o-201", "o-202", "o-203"):
        saga.wait_for_status(order_id, {"COMPLETED", "FAILED"})
    return "o-203"


def main(out_dir: Path) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="ordersaga-shot-"))
    stack = Stack(scratch / ".ordersaga", tie_to_parent=True, log=print)
    console = driver = None
    try:
        stack.up(timeout=120, profile="embedded")
        shown = orders(SagaClient(stack.state()))
        port = free_port(set())
        console = subprocess.Popen([sys.executable, "-m", "ordersaga.console", "--host", HOST, "--port", str(port)],
                                   env={**os.environ, "ORDERSAGA_HOME": str(stack.run_dir)})
        url = f"http://{HOST}:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        driver = chromium.start(*chromium.ensure(), width=1200, height=860)
        for path, name in (("/", "console.png"), (f"/orders/{shown}", "console-order.png")):
            driver.get(url + path)
            time.sleep(4)  # the first polls and the charts
            driver.save_screenshot(str(out_dir / name))
            print(f"wrote {out_dir / name}")
    finally:
        if driver:
            driver.quit()
        if console:
            console.terminate()
            console.wait(10)
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
