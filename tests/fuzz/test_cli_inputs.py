"""The CLI's arguments against the real stack: `main()` in this process with generated argv (the
argv strategy of tests/unit/test_cli_inputs.py), and a few runs of the real console script.

Properties: an exit code, errors on stderr as one line (or argparse's usage), never a traceback;
`place` either stores the order exactly as typed or leaves the id as it was.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hypothesis import example, given

from order_service.domain import ID_PATTERN
from ordersaga import cli_orders
from ordersaga.client import SagaClient
from tests.helpers.strategies import unique
from tests.unit.test_cli_inputs import argvs, check_answer, run_cli

EXAMPLES = 150
FAULTY = ("inventory-service", "payment-service", "shipping-service")  # the apps with fault injection


@pytest.fixture()
def stack_home(stack, monkeypatch):
    """The CLI finds the stack through ORDERSAGA_HOME, as a user's shell would."""
    monkeypatch.setenv("ORDERSAGA_HOME", str(stack.run_dir))
    return stack.run_dir


def stored(client: SagaClient, order_id: str):
    if not re.fullmatch(ID_PATTERN, order_id):
        return None
    order = client.get(order_id)
    return order and order["request"]


@pytest.mark.timeout(900)
def test_cli_arguments_on_the_stack(stack, stack_home, fuzz, figures):
    client = SagaClient(stack.state())

    def make():
        @given(argv=argvs())
        @example(argv=["place", "--order-id", unique("q"), "--customer", "c", "--item", "apple:99999999999:1.00"])
        @example(argv=["show", "abc\n"])
        @figures.counting
        def cli(argv):
            if argv[0] == "watch":  # only ids that cannot exist: a watch follows an order until it ends
                argv = ["watch", f"{unique('absent')}!"]
            order_id = argv[argv.index("--order-id") + 1] if argv[0] == "place" else ""
            before = stored(client, order_id) if order_id else None
            code, out, err = run_cli(argv)
            if argv[0] == "faults":  # a valid `faults` command stays in force: clear it, or later
                for app_id in FAULTY:  # examples and tests would meet a service failing on purpose
                    client.clear_faults(app_id)
            check_answer(argv, code, out, err)
            if order_id and code == 0:
                typed = [cli_orders.parse_item(argv[n + 1]) for n, word in enumerate(argv[:-1]) if word == "--item"]
                assert stored(client, order_id) == {
                    "order_id": order_id, "customer_id": argv[argv.index("--customer") + 1],
                    "items": [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents}
                              for i in typed],
                }, f"{argv!r} succeeded but the order is not stored as typed"
            elif order_id:
                assert stored(client, order_id) == before, f"{argv!r} failed ({err.strip()}) but changed the order"
        return cli

    try:
        for number in fuzz.rounds("cli"):
            fuzz.explore(make, EXAMPLES, number)
    except BaseException:
        figures.violations += 1
        raise


@pytest.mark.parametrize("argv", [
    ["place", "--order-id", "q", "--customer", "c", "--item", "apple:99999999999:1.00"],  # issue 14
    ["place", "--order-id", "q", "--customer", "c", "--item", "apple:1:1e400"],
    ["stock", "set", "s", "99999999999"],
    ["credit", "set", "c", "inf"],
    ["show", "no such order"],
    ["faults", "payment", "--error-rate", "nan"],
    ["faults", "payment", "--method", "M" * 10_000, "--error-rate", "1"],  # was echoed: a 10 KB status message
], ids=["huge-quantity", "huge-price", "huge-stock", "infinite-credit", "bad-id", "nan-rate", "huge-method"])
def test_the_console_script_reports_errors_without_a_traceback(stack_home, argv):
    run = subprocess.run([sys.executable, "-m", "ordersaga.cli", *argv], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ORDERSAGA_HOME": str(stack_home)})
    assert run.returncode != 0
    assert run.stderr.startswith("ordersaga: error: "), run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "RESOURCE_EXHAUSTED" not in run.stderr, "the error was too big to reach the client"
