"""The CLI's arguments, fuzzed without a stack: `main()` with generated argv against a fake
client that answers every call. Whatever the arguments, the CLI exits with a code, an error
goes to stderr as one `ordersaga: error: ...` line (or argparse's usage message), and no
Python traceback is ever printed. What it sends is what the user typed (no silent rounding).

tests/fuzz/test_cli_inputs.py runs the same kind of arguments against the real stack."""

from __future__ import annotations

import contextlib
import io
import signal
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apphost import faults_pb2
from inventory_service import inventory_pb2 as inv_pb
from order_service import orders_pb2 as pb
from ordersaga import cli, cli_orders
from payment_service import payment_pb2 as pay_pb
from tests.helpers.strategies import INT32_MAX, INT64_MAX, any_text, order_ids

# ---- argument strategies (shared with tests/fuzz) ---------------------------------------------

numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "1", "-1", "1.5", "1.505", "1e3", "1e400", "-1e400", "inf", "-inf", "nan", "sNaN",
                     "0x10", "1_000", "²", "١٢", " 1", "", str(INT32_MAX), str(INT32_MAX + 1), str(INT64_MAX),
                     "92233720368547758.07", "92233720368547758.08", "99999999999", "1.00"]),
)
words = st.one_of(order_ids, numbers, any_text, st.text(st.characters(codec="utf-8"), max_size=5).map(
    lambda t: t + "\udcff"))  # what bytes that are not UTF-8 become in sys.argv
items = st.one_of(
    st.builds(lambda s, q, p: f"{s}:{q}:{p}", order_ids, numbers, numbers),
    words,
)


@st.composite
def argvs(draw) -> list[str]:
    """A command line: a verb the fake client can serve, then its arguments, well or badly formed."""
    verb = draw(st.sampled_from(["place", "show", "list", "cancel", "retry", "close", "approve", "reject",
                                 "stock", "credit", "faults", "watch", "nonsense"]))
    if verb == "place":
        args = ["--order-id", draw(order_ids), "--customer", draw(order_ids)]
        for item in draw(st.lists(items, max_size=3)):
            args += ["--item", item]
        args += draw(st.sampled_from([[], ["--json"]]))
    elif verb in ("stock", "credit"):
        args = [draw(st.sampled_from(["set", "get", "put"])), draw(order_ids)] + draw(st.lists(numbers, max_size=2))
    elif verb == "faults":
        args = [draw(st.sampled_from(["inventory", "payment-service", "shipping", "order-service"]))]
        args += draw(st.lists(st.sampled_from(["--error-rate", "--delay", "--method", "--clear"]).flatmap(
            lambda flag: st.just([flag]) if flag == "--clear" else st.tuples(st.just(flag), numbers).map(list)),
            max_size=3).map(lambda parts: [word for part in parts for word in part]))
    elif verb == "list":
        args = draw(st.sampled_from([[], ["--status", "placed"], ["--json"]])) + draw(
            st.lists(st.just("--status").flatmap(lambda flag: st.tuples(st.just(flag), words)).map(list), max_size=1)
            .map(lambda parts: [w for part in parts for w in part]))
    else:
        args = [draw(order_ids)] + draw(st.lists(words, max_size=2))
    return [verb, *args]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process: (exit code, stdout, stderr). argparse exits with SystemExit."""
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGPIPE)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            signal.signal(signal.SIGPIPE, handler)  # main() resets it for pipes; not ours to keep
    return code, out.getvalue(), err.getvalue()


def check_answer(argv: list[str], code: int, out: str, err: str) -> None:
    """The CLI's promise for any argv: an exit code, errors on stderr, never a traceback."""
    assert "Traceback" not in out + err, f"{argv!r} printed a traceback:\n{err}"
    if code != 0:
        assert err.strip(), f"{argv!r} exited {code} with nothing on stderr"
        assert err.startswith("ordersaga: error: ") or "usage:" in err, f"{argv!r}: stderr is not an error: {err}"


# ---- a fake client: every call answers ----------------------------------------------------

class FakeOrders:
    def __init__(self, sent: list):
        self.sent = sent

    def PlaceOrder(self, request, timeout=None):  # noqa: N802 - the gRPC method's name
        self.sent.append(request)
        return pb.PlaceOrderResponse(order_id=request.order_id, status="PLACED")

    def __getattr__(self, name):
        def answer(request, timeout=None):
            self.sent.append(request)
            order = pb.Order(order_id=getattr(request, "order_id", ""), status="COMPLETED")
            return iter([order]) if name == "WatchOrder" else (
                pb.ListOrdersResponse(orders=[order]) if name == "ListOrders" else order)
        return answer


class FakeClient:
    def __init__(self):
        self.sent: list = []

    def orders(self):
        return FakeOrders(self.sent)

    def set_stock(self, sku, on_hand):
        return inv_pb.StockLevel(sku=sku, on_hand=on_hand, available=on_hand)

    def get_stock(self, sku):
        return inv_pb.StockLevel(sku=sku)

    def set_credit(self, customer, limit_cents):
        return pay_pb.Credit(customer_id=customer, limit_cents=limit_cents)

    def get_credit(self, customer):
        return pay_pb.Credit(customer_id=customer)

    def get(self, order_id):
        """The actor's state: every order waits for its decision."""
        return {"request": {"order_id": "o", "customer_id": "c", "items": [{"sku": "a", "quantity": 1,
                                                                            "unit_price_cents": 150_000}]},
                "status": "AWAITING_APPROVAL", "approval_threshold_cents": 100_000}

    def approve(self, order_id, decision="approve", approver="", reason=""):
        self.sent.append((order_id, decision, approver, reason))

    def set_faults(self, service, error_rate=0.0, delay_seconds=0.0, methods=()):
        return faults_pb2.FaultSettings(error_rate=error_rate, delay_seconds=delay_seconds, methods=list(methods))

    def clear_faults(self, service):
        return faults_pb2.FaultSettings()


@pytest.fixture()
def fake_client(monkeypatch):
    client = FakeClient()
    monkeypatch.setattr(cli, "running_client", lambda: client)
    return client


# ---- properties ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs())
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "apple:99999999999:1.00"])  # issue 14
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "a:1:1e400"])
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "a:1:inf"])
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "a:1:sNaN"])
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "a:1:99999999999999999999"])
@example(argv=["place", "--order-id", "q", "--customer", "c", "--item", "a:²:1"])
@example(argv=["place", "--order-id", "q\udcff", "--customer", "c", "--item", "a:1:1"])
@example(argv=["stock", "set", "s", "99999999999"])
@example(argv=["credit", "set", "c", "1e400"])
def test_any_argv_gives_an_exit_code_and_no_traceback(fake_client, argv):
    code, out, err = run_cli(argv)
    check_answer(argv, code, out, err)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sku=order_ids, quantity=st.integers(0, 2**70), price=st.decimals(0, 10**20, places=2))
@example(sku="apple", quantity=99999999999, price=Decimal("1.00"))
def test_an_item_is_sent_exactly_as_typed_or_refused(fake_client, sku, quantity, price):
    fake_client.sent.clear()  # the fixture outlives one example
    argv = ["place", "--order-id", "q", "--customer", "c", f"--item={sku}:{quantity}:{price}"]
    code, out, err = run_cli(argv)
    check_answer(argv, code, out, err)
    fits = ":" not in sku and quantity <= INT32_MAX and price * 100 <= INT64_MAX
    if fits:
        assert code == 0, err
        (request,) = fake_client.sent
        assert (request.items[0].sku, request.items[0].quantity, request.items[0].unit_price_cents) == (
            sku, quantity, int(price * 100))
    else:
        assert code != 0 and not fake_client.sent


@pytest.mark.parametrize("text, message", [
    ("apple:99999999999:1.00", "quantity is out of range: at most 2147483647"),
    ("apple:1:92233720368547758.08", "price is out of range"),
    ("apple:1:inf", "price must be a number"),
    ("apple:²:1", "quantity must be a whole number"),
])
def test_out_of_range_items_are_refused_with_the_bound(text, message):
    with pytest.raises(cli_orders.UsageError, match=message):
        cli_orders.parse_item(text)


@pytest.mark.parametrize("order_id", ["\x80", " ", "a/b", "x" * 65])
def test_a_decision_for_an_id_no_order_can_have_is_refused_before_any_lookup(fake_client, order_id):
    """Found by the CLI fuzz: the lookup put the raw id into a URL and crashed."""
    code, out, err = run_cli(["approve", order_id])
    assert code == 1 and "nothing published" in err and not fake_client.sent
