"""`ordersaga`: run the stack and drive orders from a terminal (DESIGN.md, CLI section).

Errors go to stderr with a non-zero exit code; `--json` output is for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import grpc

from ordersaga import cli_operations as operations
from ordersaga import cli_orders
from ordersaga.cli_orders import UsageError
from ordersaga.client import FaultInjectionOff, NoLiveSidecar, SagaClient
from ordersaga.console.__main__ import DEFAULT_PORT as CONSOLE_PORT
from ordersaga.kube import KubeError
from ordersaga.stack import processes
from ordersaga.stack.layout import PROFILES, StackState, run_dir_from_env
from ordersaga.stack.profiles import ProfileUnavailable
from ordersaga.stack.profiles import profile as profile_named
from ordersaga.stack.runtime import RuntimeProvisionError, ensure_dapr
from ordersaga.stack.stack import Stack, StackError


def _info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    # JSON logs are a setting of the apps (apphost.logs); the shell's ORDERSAGA_LOG_FORMAT works too.
    extra = {"ORDERSAGA_LOG_FORMAT": args.log_format} if args.log_format else {}
    stack = Stack(run_dir_from_env(), tie_to_parent=not args.detach, log=_info, extra_env=extra)
    stack.up(timeout=args.timeout, profile=args.profile, replicas=args.replicas, observe=args.observe)
    _print_endpoints(stack.status())
    if args.detach:
        _info("Running in the background; `ordersaga down` stops it.")
        return 0
    _info("Press Ctrl-C to stop the stack.")
    return _supervise(stack)


def _supervise(stack: Stack) -> int:
    """Foreground mode: stay until Ctrl-C/SIGTERM, report processes that die, then stop all."""
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    reported: set[str] = set()
    while not stopping:
        state = stack.state()
        for name, record in state.processes.items():
            if not processes.is_running(record) and name not in reported:
                reported.add(name)
                _info(f"{name} (pid {record.pid}) exited; `ordersaga up` in another terminal restarts it. "
                      f"Last lines of {record.log}:\n{processes.log_tail(record.log, 10)}")
            elif processes.is_running(record):
                reported.discard(name)
        if not state.processes:
            _info("The stack was stopped from elsewhere.")
            return 0
        time.sleep(1)
    _info("Stopping the stack...")
    stopped = stack.down()
    _info(f"Stopped {len(stopped)} processes.")
    return 0


def _print_endpoints(status: dict) -> None:
    for app_id, app in status["apps"].items():
        for number, replica in enumerate(app["replicas"], start=1):
            label = app_id if number == 1 else f"  replica {number}"
            _info(f"  {label:<18} app gRPC 127.0.0.1:{replica['app_grpc_port']}  "
                  f"sidecar gRPC {replica['dapr_grpc_port']}  HTTP {replica['dapr_http_port']}")
    for line in _observability_lines(status):
        _info(line)


def _observability_lines(status: dict) -> list[str]:
    seen = status.get("observability")
    if not seen:
        return []
    lines = [f"  traces (Zipkin)    {seen['zipkin_url']}/zipkin/",
             f"  console            {seen['console_url'] or '(not in this checkout)'}",
             "  metrics            `ordersaga top`, or Prometheus text at:"]
    lines += [f"    {name:<24} {url}" for name, url in seen["metrics"].items()]
    return lines


def cmd_down(args: argparse.Namespace) -> int:
    stack = Stack(run_dir_from_env(), log=_info)
    stopped = stack.down()
    _info(f"Stopped {len(stopped)} processes." if stopped else "Nothing was running.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = Stack(run_dir_from_env()).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 1
    if not status["processes"]:
        print(f"No stack in {status['run_dir']}.")
        return 1
    print(f"Stack in {status['run_dir']} ({status['profile']} profile, {status['replicas']} replica(s) per app, "
          f"Dapr {status['dapr_version']}):")
    for name, proc in status["processes"].items():
        print(f"  {name:<26} {'running' if proc['running'] else 'STOPPED':<8} pid {proc['pid']}")
    for line in _observability_lines(status):
        print(line)
    return 0 if status["running"] else 1


def cmd_top(args: argparse.Namespace) -> int:
    from ordersaga import top

    return top.run(run_dir_from_env(), once=args.once, interval=args.interval)


def running_client() -> SagaClient:
    """A client for the stack in the run directory; any live sidecar serves it (a replica that
    died does not stop the CLI)."""
    run_dir = run_dir_from_env()
    state = StackState.load(run_dir)
    if state is None or not any(processes.is_running(r) for r in state.processes.values() if r.kind == "sidecar"):
        raise StackError(f"the stack in {run_dir} is not running: start it with `ordersaga up --detach`")
    return SagaClient(state)


def kube_client(args: argparse.Namespace) -> SagaClient:
    """With --kube: the system deployed on Kubernetes, through a port-forward to order-service's
    sidecar (ordersaga/kube.py); the forward lives until the CLI exits."""
    from ordersaga import kube

    return kube.kube_client(args.namespace)


def with_client(verb):
    return lambda args: verb(kube_client(args) if getattr(args, "kube", False) else running_client(), args)


_LOCAL_ONLY = {"up", "down", "status", "runtime", "top", "console"}


def cmd_console(args: argparse.Namespace) -> int:
    """The web console for the running stack, in the foreground until Ctrl-C."""
    from ordersaga.console.__main__ import serve  # needs the `stack` extra (starlette, uvicorn)

    running_client()  # fails loudly when no stack runs here
    serve(run_dir_from_env(), args.host, args.port, announce=_info)
    return 0


def cmd_runtime(args: argparse.Namespace) -> int:
    """Provision without starting anything: the Dapr binaries, and what the profile runs on."""
    binaries = ensure_dapr(log=_info)
    print(f"Dapr {binaries.version} ({binaries.source}) in {binaries.daprd.parent}")
    for name in args.profile or []:
        profile_named(name).prepare(_info)
        print(f"profile {name}: ready")
    if args.observe:
        from ordersaga.stack import zipkin

        try:
            print(f"--observe: Zipkin {zipkin.ZIPKIN_VERSION} in {zipkin.ensure_zipkin(_info)}")
        except zipkin.ZipkinUnavailable as error:
            raise StackError(str(error)) from None
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("must be between 1 and 16")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordersaga",
        description="Order saga on Dapr: run the stack, place and follow orders, approve, administer.",
        epilog="Money is given in currency units with up to two decimals (12.50). "
               "The run directory is ./.ordersaga (ORDERSAGA_HOME overrides).",
    )
    parser.add_argument("--kube", action="store_true",
                        help="drive ordersaga deployed on Kubernetes (kubectl's cluster, or the local one of "
                             "`make k8s-up`) through a port-forward to order-service's sidecar")
    parser.add_argument("--namespace", default="ordersaga", help="with --kube: the release's namespace (default "
                                                                  "ordersaga)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the stack (only what is not running)")
    up.add_argument("--detach", action="store_true", help="return once healthy; `ordersaga down` stops it")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each wave to be healthy")
    up.add_argument("--profile", choices=PROFILES, default=None,
                    help="embedded (SQLite, NATS) or production (PostgreSQL, Kafka); default: the stack's own, "
                         "else ORDERSAGA_PROFILE, else embedded")
    up.add_argument("--replicas", type=_positive_int, default=None, metavar="N",
                    help="instances of each app, each with its own sidecar (default: the stack's own, else 1)")
    up.add_argument("--observe", action=argparse.BooleanOptionalAction, default=None,
                    help="also a Zipkin server (traces), Prometheus metrics on every app and sidecar, and the web "
                         "console; needs Java 17+ (default: the stack's own, else off)")
    up.add_argument("--log-format", choices=["text", "json"], default=None,
                    help="the apps' log lines: text (default) or one JSON object per line")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop every process of the stack").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="processes, pids and ports of the stack")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    runtime = sub.add_parser("runtime", help="find or build daprd, placement and scheduler 1.18; with --profile, "
                                             "also what that profile runs on (installs PostgreSQL, fetches Kafka)")
    runtime.add_argument("--profile", choices=PROFILES, action="append")
    runtime.add_argument("--observe", action="store_true", help="also fetch what `up --observe` runs (Zipkin)")
    runtime.set_defaults(func=cmd_runtime)

    place = sub.add_parser("place", help="place an order")
    place.add_argument("--order-id", required=True)
    place.add_argument("--customer", required=True)
    place.add_argument("--item", action="append", required=True, metavar="SKU:QTY:UNIT_PRICE",
                       help="a line item, e.g. apple:2:1.50; repeat for more lines")
    place.add_argument("--json", action="store_true")
    place.set_defaults(func=with_client(cli_orders.place))

    show = sub.add_parser("show", help="an order with its timeline")
    show.add_argument("order_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=with_client(cli_orders.show))

    watch = sub.add_parser("watch", help="follow an order's saga live until it ends")
    watch.add_argument("order_id", metavar="ID")
    watch.set_defaults(func=with_client(cli_orders.watch))

    listing = sub.add_parser("list", help="orders, newest first, a page at a time, optionally filtered")
    cli_orders.add_filters(listing)
    listing.add_argument("--page-size", type=lambda t: cli_orders.whole(t, "--page-size", 1000), default=0,
                         metavar="N", help="orders per page (default 50, at most 1000)")
    listing.add_argument("--page-token", default="", metavar="T", help="the next page of the same query")
    listing.add_argument("--all", action="store_true", help="every page")
    listing.add_argument("--json", action="store_true",
                         help='{"orders": [...], "next_page_token": "...", "total_matching": N}')
    listing.set_defaults(func=with_client(cli_orders.list_orders))

    cancel = sub.add_parser("cancel", help="cancel an order (refused once its shipment is being created)")
    cancel.add_argument("order_id", metavar="ID")
    cancel.add_argument("--reason", default="")
    cancel.set_defaults(func=with_client(cli_orders.cancel))

    operator = os.environ.get("USER") or "cli"
    retry = sub.add_parser("retry", help="run again what an order that NEEDS_ATTENTION left unfinished")
    retry.add_argument("order_id", metavar="ID")
    retry.add_argument("--by", default=operator, help="who asks (on the timeline; default: $USER)")
    retry.add_argument("--json", action="store_true")
    retry.set_defaults(func=with_client(cli_orders.retry))

    close = sub.add_parser("close", help="end an order that NEEDS_ATTENTION whose unfinished work was done by hand")
    close.add_argument("order_id", metavar="ID")
    close.add_argument("--note", required=True, help="what was done by hand (on the timeline)")
    close.add_argument("--by", default=operator, help="who closes it (on the timeline; default: $USER)")
    close.add_argument("--json", action="store_true")
    close.set_defaults(func=with_client(cli_orders.close))

    for verb, text in (("approve", "approve an order waiting for approval"), ("reject", "reject it")):
        decide = sub.add_parser(verb, help=text)
        decide.add_argument("order_id", metavar="ID")
        decide.add_argument("--approver", default="cli")
        if verb == "reject":
            decide.add_argument("--reason", default="")
        decide.set_defaults(func=with_client(cli_orders.decide))

    operations.add_parsers(sub, with_client, operator)

    stock = sub.add_parser("stock", help="stock of a SKU: stock set SKU QTY | stock get SKU [--json]")
    stock.add_argument("action", choices=["set", "get"])
    stock.add_argument("sku", metavar="SKU")
    stock.add_argument("quantity", metavar="QTY", nargs="?")
    stock.add_argument("--json", action="store_true")
    stock.set_defaults(func=with_client(cli_orders.stock))

    credit = sub.add_parser("credit", help="credit of a customer: credit set CUSTOMER AMOUNT | credit get CUSTOMER")
    credit.add_argument("action", choices=["set", "get"])
    credit.add_argument("customer", metavar="CUSTOMER")
    credit.add_argument("amount", metavar="AMOUNT", nargs="?")
    credit.add_argument("--json", action="store_true")
    credit.set_defaults(func=with_client(cli_orders.credit))

    faults = sub.add_parser("faults", help="inject errors or delay into a service (tests, demos)")
    faults.add_argument("service", metavar="SERVICE", help="inventory, payment or shipping (-service optional)")
    faults.add_argument("--error-rate", type=float, metavar="R", help="0..1, share of calls that fail")
    faults.add_argument("--delay", type=float, metavar="SECONDS", help="added before each call")
    faults.add_argument("--method", action="append", help="only this method (repeatable), e.g. CreateShipment")
    faults.add_argument("--clear", action="store_true", help="remove every fault")
    faults.set_defaults(func=with_client(cli_orders.faults))

    top = sub.add_parser("top", help="live view of an --observe stack: sagas/s, in flight, statuses, step latency")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="refresh period (default 2)")
    top.set_defaults(func=cmd_top)

    console = sub.add_parser("console", help="the web console for the running stack (foreground; Ctrl-C stops it)")
    console.add_argument("--port", type=int, default=CONSOLE_PORT, help=f"port on 127.0.0.1 (default {CONSOLE_PORT})")
    console.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    console.set_defaults(func=cmd_console)

    bench = sub.add_parser("bench", help="benchmark a stack of its own (see `ordersaga bench --help`)",
                           add_help=False)
    bench.add_argument("args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=lambda args: run_bench(args.args))
    return parser


def run_bench(argv: list[str]) -> int:
    from ordersaga import bench  # its own options and --help

    return bench.main(argv)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    # `ordersaga show o-1 | head` closes the pipe early: end quietly, as other CLI tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    argv = sys.argv[1:] if argv is None else argv
    # Bytes that are not UTF-8 reach Python as lone surrogates, which no request can carry.
    unreadable = next((arg for arg in argv if not _is_utf8(arg)), None)
    if unreadable is not None:
        return cli_orders.fail(f"argument {unreadable!r} is not valid UTF-8", code=2)
    if argv[:1] == ["bench"]:
        return run_bench(argv[1:])
    args = build_parser().parse_args(argv)
    if args.kube and args.command in _LOCAL_ONLY:
        return cli_orders.fail(f"`{args.command}` is for the local stack; with --kube, the cluster runs ordersaga "
                               "(kubectl and helm manage it: docs/deploying.md)", code=2)
    try:
        return args.func(args)
    except UsageError as error:
        return cli_orders.fail(str(error), code=2)
    except grpc.RpcError as error:
        return cli_orders.fail(cli_orders.grpc_error_message(error))
    except (StackError, RuntimeProvisionError, ProfileUnavailable, NoLiveSidecar, FaultInjectionOff,
            KubeError) as error:
        return cli_orders.fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
