"""`ordersaga`: run the stack and drive orders from a terminal (DESIGN.md, CLI section).

Errors go to stderr with a non-zero exit code; `--json` output is for scripts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from ordersaga.stack import processes
from ordersaga.stack.layout import run_dir_from_env
from ordersaga.stack.runtime import RuntimeProvisionError, ensure_dapr
from ordersaga.stack.stack import Stack, StackError


class CliError(Exception):
    """A user-facing error: printed to stderr, exit code 1 (2 for usage errors)."""


def _info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    stack = Stack(run_dir_from_env(), tie_to_parent=not args.detach, log=_info)
    stack.up(timeout=args.timeout)
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
        _info(f"  {app_id:<18} app gRPC 127.0.0.1:{app['app_grpc_port']}  "
              f"sidecar gRPC {app['dapr_grpc_port']}  HTTP {app['dapr_http_port']}")


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
    print(f"Stack in {status['run_dir']} (Dapr {status['dapr_version']}):")
    for name, proc in status["processes"].items():
        print(f"  {name:<26} {'running' if proc['running'] else 'STOPPED':<8} pid {proc['pid']}")
    return 0 if status["running"] else 1


def cmd_runtime(args: argparse.Namespace) -> int:
    binaries = ensure_dapr(log=_info)
    print(f"Dapr {binaries.version} ({binaries.source}) in {binaries.daprd.parent}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ordersaga", description="Order saga on Dapr: run the stack, drive orders.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the stack (only what is not running)")
    up.add_argument("--detach", action="store_true", help="return once healthy; `ordersaga down` stops it")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each wave to be healthy")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop every process of the stack")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="processes, pids and ports of the stack")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    runtime = sub.add_parser("runtime", help="find or build daprd, placement and scheduler 1.18")
    runtime.set_defaults(func=cmd_runtime)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, StackError, RuntimeProvisionError) as error:
        print(f"ordersaga: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
