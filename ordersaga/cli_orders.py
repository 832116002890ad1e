"""The CLI's order and admin verbs: place, show, watch, list, cancel, approve, reject, stock,
credit, faults. Orders go through the public gRPC API (orders.v1.OrderService) via
order-service's sidecar; approvals are published as CloudEvents through a sidecar.

Money on the command line is in currency units with up to two decimals (12.50); the APIs
carry integer cents. JSON output carries both where money appears.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal, InvalidOperation

import grpc

from order_service import orders_pb2 as pb
from order_service.domain import BEFORE_APPROVAL, ID_PATTERN, OrderState, OrderStatus
from order_service.sidecar import ActorCallError
from ordersaga.client import SagaClient

SERVICES = ("inventory-service", "payment-service", "shipping-service")


class UsageError(Exception):
    """Bad command-line input: printed to stderr, exit code 2."""


# What the APIs' integer fields can carry (quantities are int32, cents int64): a larger number
# cannot even be put in a request, so it is refused here, naming the bound.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def cents(text: str, what: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"{what} must be a number like 12.50, not {text!r}") from None
    if not value.is_finite():  # inf, nan: also what quantize below cannot take
        raise UsageError(f"{what} must be a number like 12.50, not {text!r}")
    if abs(value) * 100 > INT64_MAX:
        raise UsageError(f"{what} is out of range: at most {INT64_MAX // 100}.{INT64_MAX % 100:02d}, not {text!r}")
    if value != value.quantize(Decimal("0.01")):
        raise UsageError(f"{what} has more than two decimals: {text!r}")
    return int(value * 100)


def whole(text: str, what: str, most: int = INT32_MAX) -> int:
    """A whole number >= 0 in ASCII digits (str.isdigit also takes '²', which int() refuses)."""
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{what} must be a whole number, not {text!r}")
    value = int(text)
    if value > most:
        raise UsageError(f"{what} is out of range: at most {most}, not {text}")
    return value


def units(value_cents: int) -> float:
    return value_cents / 100


def parse_item(text: str) -> pb.LineItem:
    parts = text.split(":")
    if len(parts) != 3:
        raise UsageError(f"--item must be SKU:QTY:UNIT_PRICE (e.g. apple:2:1.50), not {text!r}")
    sku, quantity, price = parts
    return pb.LineItem(sku=sku, quantity=whole(quantity, f"--item {text!r}: quantity"),
                       unit_price_cents=cents(price, f"--item {text!r}: price"))


# ---- orders ---------------------------------------------------------------------------------

def place(client: SagaClient, args) -> int:
    items = [parse_item(text) for text in args.item]
    reply = client.orders().PlaceOrder(
        pb.PlaceOrderRequest(order_id=args.order_id, customer_id=args.customer, items=items), timeout=30)
    if args.json:
        print(json.dumps({"order_id": reply.order_id, "status": reply.status}))
    else:
        print(f"Order {reply.order_id}: {reply.status}. Follow it with `ordersaga watch {reply.order_id}`.")
    return 0


def show(client: SagaClient, args) -> int:
    order = client.orders().GetOrder(pb.GetOrderRequest(order_id=args.order_id), timeout=30)
    if args.json:
        print(json.dumps(order_json(order), indent=2))
    else:
        print_order(order)
    return 0


def watch(client: SagaClient, args) -> int:
    shown = 0
    status = ""
    for order in client.orders().WatchOrder(pb.WatchOrderRequest(order_id=args.order_id)):
        if not shown:
            print(f"Order {order.order_id} for {order.customer_id}, total {units(order.total_cents):.2f}")
        for entry in order.timeline[shown:]:
            print(f"  {entry.at[11:23]}  {entry.step:<24} {entry.outcome:<16} {entry.detail}", flush=True)
        shown = len(order.timeline)
        if order.status != status:
            status = order.status
            print(f"  -> {status}{' (' + order.reason + ')' if order.reason else ''}", flush=True)
    return 0


def list_request(args, page_token: str = "") -> pb.ListOrdersRequest:
    return pb.ListOrdersRequest(status=args.status or "", customer_id=args.customer or "", reason=args.reason or "",
                                placed_after=args.placed_after or "", placed_before=args.placed_before or "",
                                saga_version=args.saga_version or "", in_status_for_s=args.in_status_for or 0,
                                stuck=args.stuck, page_size=args.page_size or 0,
                                page_token=page_token or args.page_token or "")


def list_orders(client: SagaClient, args) -> int:
    """One page (or, with --all, every page) of the orders the filters select, newest first."""
    api = client.orders()
    reply = api.ListOrders(list_request(args), timeout=120)
    orders, token, total = list(reply.orders), reply.next_page_token, reply.total_matching
    while args.all and token:
        reply = api.ListOrders(list_request(args, token), timeout=120)
        orders += reply.orders
        token = reply.next_page_token
    if args.json:
        print(json.dumps({"orders": [order_json(o, timeline=False) for o in orders], "next_page_token": token,
                          "total_matching": total}, indent=2))
        return 0
    if not orders:
        print(f"No orders match ({describe_filter(args)})." if filtered(args) else "No orders.")
        return 0
    for order in orders:
        note = f"  {order.stuck_reason}" if order.stuck_reason else \
            "  saga STALLED: its version is not deployed" if order.saga_runtime_status == "STALLED" else ""
        print(f"{order.order_id:<40} {order.status:<18} {order.reason:<22} {units(order.total_cents):>12.2f}{note}")
    more = f"; next page: --page-token {token}" if token else ""
    print(f"({len(orders)} of {total} matching{more})")
    return 0


def filtered(args) -> bool:
    return any([args.status, args.customer, args.reason, args.placed_after, args.placed_before, args.saga_version,
                args.in_status_for, args.stuck])


def describe_filter(args) -> str:
    parts = [f"{name.replace('_', ' ')} {getattr(args, name)}" for name in
             ("status", "customer", "reason", "placed_after", "placed_before", "saga_version")
             if getattr(args, name)]
    if args.in_status_for:
        parts.append(f"in its status for {args.in_status_for}s or more")
    if args.stuck:
        parts.append("stuck")
    return ", ".join(parts)


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The filters `list` and `bulk` take (ListOrders' fields)."""
    parser.add_argument("--status", type=check_status, default="")
    parser.add_argument("--customer", default="")
    parser.add_argument("--reason", default="", help="a failure reason, e.g. SHIPPING_FAILED")
    parser.add_argument("--placed-after", default="", metavar="TIME", help="ISO-8601, e.g. 2025-01-31T12:00:00Z")
    parser.add_argument("--placed-before", default="", metavar="TIME")
    parser.add_argument("--saga-version", default="", metavar="V", help="the order saga's version, e.g. v3")
    parser.add_argument("--in-status-for", type=seconds, default=0, metavar="DURATION",
                        help="in its status for at least this long: 90, 90s, 10m, 2h, 1d")
    parser.add_argument("--stuck", action="store_true",
                        help="only orders whose saga made no progress for ORDERSAGA_STUCK_AFTER_S, with why")


def seconds(text: str) -> int:
    """argparse type: a duration in seconds, or with a unit (s, m, h, d)."""
    units_s = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units_s else (text, "s")
    if not (number.isascii() and number.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90, 10m, 2h or 1d")
    return int(number) * units_s[unit]


def cancel(client: SagaClient, args) -> int:
    order = client.orders().CancelOrder(pb.CancelOrderRequest(order_id=args.order_id, reason=args.reason or ""),
                                        timeout=30)
    print(f"Cancel of {order.order_id} accepted; it is {order.status} and will end CANCELLED.")
    return 0


def retry(client: SagaClient, args) -> int:
    order = client.orders().RetryOrder(pb.RetryOrderRequest(order_id=args.order_id, operator=args.by), timeout=30)
    if args.json:
        print(json.dumps(order_json(order), indent=2))
    else:
        print(f"Retry of {order.order_id} started ({order.saga_instance_id}); it is {order.status}. "
              f"Follow it with `ordersaga watch {order.order_id}`.")
    return 0


def close(client: SagaClient, args) -> int:
    order = client.orders().CloseOrder(
        pb.CloseOrderRequest(order_id=args.order_id, operator=args.by, note=args.note), timeout=30)
    if args.json:
        print(json.dumps(order_json(order), indent=2))
    else:
        print(f"Order {order.order_id} closed by hand: {order.status}{f' ({order.reason})' if order.reason else ''}.")
    return 0


def decide(client: SagaClient, args) -> int:
    """Publish a decision, once the order is known to wait for one: the topic takes anything
    from anyone (DESIGN.md), and what it cannot use goes to the dead-letter topic silently, so
    the CLI says beforehand what would happen to a decision no order waits for, and publishes
    nothing then."""
    verdict = "approve" if args.command == "approve" else "reject"
    if not re.fullmatch(ID_PATTERN, args.order_id):  # no order has such an id (and no URL can carry it)
        return fail(f"order_id {args.order_id[:64]!r}: must be 1-64 letters, digits, '.', '_', ':' or '-' "
                    "(no order has that id: a decision for it would go to the dead-letter topic); nothing published")
    try:
        stored = client.get(args.order_id)
    except ActorCallError as error:
        return fail(f"could not look up order {args.order_id} ({error.code}: {error.message}); nothing published")
    refusal = decision_refusal(args.order_id, verdict, stored)
    if refusal:
        return fail(f"{refusal}; nothing published")
    client.approve(args.order_id, decision=verdict, approver=args.approver, reason=getattr(args, "reason", "") or "")
    print(f"Published {verdict} for {args.order_id} on order-approvals.")
    return 0


def decision_refusal(order_id: str, verdict: str, stored: dict | None) -> str | None:
    """Why a decision for this order would change nothing (and where it would end), or None when
    the order waits for one (or will, once its saga reaches the approval gate)."""
    dead_letter = "it would go to the dead-letter topic"
    if stored is None:
        return f"order {order_id} does not exist: {dead_letter}"
    order = OrderState.model_validate(stored)
    if order.decision:
        return f"order {order_id} was already decided ({order.decision}): the first decision wins, another does nothing"
    if order.status not in BEFORE_APPROVAL:
        return f"order {order_id} is not waiting for a decision (it is {order.status}): {dead_letter}"
    # An order placed before the threshold was kept with it: trusted once it says it waits.
    if not order.awaits_decision(current_threshold_cents=sys.maxsize):
        return f"order {order_id} does not need approval (its total is below the approval threshold): {dead_letter}"
    return None


def order_json(order: pb.Order, timeline: bool = True) -> dict:
    data = {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": order.status,
        "reason": order.reason,
        "total_cents": order.total_cents,
        "saga_instance_id": order.saga_instance_id,
        "saga_runtime_status": order.saga_runtime_status,
        "tracking_number": order.tracking_number,
        "items": [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in order.items],
        "placed_at": order.placed_at,
        "status_since": order.status_since,
        "saga_version": order.saga_version,
    }
    if order.stuck_reason:
        data["stuck_reason"] = order.stuck_reason
    if timeline:
        data["timeline"] = [{"at": e.at, "step": e.step, "outcome": e.outcome, "detail": e.detail}
                            for e in order.timeline]
    return data


def print_order(order: pb.Order) -> None:
    reason = f" ({order.reason})" if order.reason else ""
    print(f"Order {order.order_id}: {order.status}{reason}")
    print(f"  customer {order.customer_id}, total {units(order.total_cents):.2f}, "
          f"saga {order.saga_instance_id} (workflow {order.saga_runtime_status})")
    if order.tracking_number:
        print(f"  tracking number {order.tracking_number}")
    print(f"  {'at':<12}  {'step':<24} {'outcome':<16} detail")
    for entry in order.timeline:
        print(f"  {entry.at[11:23]:<12}  {entry.step:<24} {entry.outcome:<16} {entry.detail}")


# ---- admin ----------------------------------------------------------------------------------

def stock(client: SagaClient, args) -> int:
    if args.action == "set":
        if args.quantity is None:
            raise UsageError("stock set needs SKU and a quantity >= 0")
        level = client.set_stock(args.sku, whole(args.quantity, "QTY"))
    else:
        level = client.get_stock(args.sku)
    data = {"sku": level.sku or args.sku, "on_hand": level.on_hand, "reserved": level.reserved,
            "available": level.available}
    print(json.dumps(data) if args.json else
          f"{data['sku']}: on hand {data['on_hand']}, reserved {data['reserved']}, available {data['available']}")
    return 0


def credit(client: SagaClient, args) -> int:
    if args.action == "set":
        if args.amount is None:
            raise UsageError("credit set needs CUSTOMER and AMOUNT")
        limit = cents(args.amount, "AMOUNT")
        if limit < 0:
            raise UsageError("AMOUNT must not be negative")
        account = client.set_credit(args.customer, limit)
    else:
        account = client.get_credit(args.customer)
    data = {"customer": account.customer_id or args.customer, "limit": units(account.limit_cents),
            "held": units(account.held_cents), "captured": units(account.captured_cents),
            "limit_cents": account.limit_cents, "held_cents": account.held_cents,
            "captured_cents": account.captured_cents}
    print(json.dumps(data) if args.json else
          f"{data['customer']}: limit {data['limit']:.2f}, held {data['held']:.2f}, captured {data['captured']:.2f}")
    return 0


def faults(client: SagaClient, args) -> int:
    service = args.service if args.service.endswith("-service") else f"{args.service}-service"
    if service not in SERVICES:
        raise UsageError(f"SERVICE must be one of {', '.join(SERVICES)} (or inventory, payment, shipping)")
    if args.clear:
        settings = client.clear_faults(service)
    else:
        if args.error_rate is None and args.delay is None:
            raise UsageError("give --error-rate and/or --delay, or --clear")
        settings = client.set_faults(service, error_rate=args.error_rate or 0.0, delay_seconds=args.delay or 0.0,
                                     methods=tuple(args.method or ()))
    methods = ", ".join(settings.methods) or "all business calls"
    print(f"{service}: error rate {settings.error_rate:.2f}, delay {settings.delay_seconds:.2f}s on {methods}")
    return 0


def check_status(text: str) -> str:
    """argparse type for --status: a known status, any case."""
    if text and text.upper() not in OrderStatus.__members__:
        raise argparse.ArgumentTypeError(f"--status must be one of {', '.join(OrderStatus)}")
    return text.upper()


def grpc_error_message(error: grpc.RpcError) -> str:
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"UNAVAILABLE: {error.details()} (is the stack up? `ordersaga status`)"
    return f"{code.name}: {error.details()}"


def fail(message: str, code: int = 1) -> int:
    print(f"ordersaga: error: {message}", file=sys.stderr)
    return code
