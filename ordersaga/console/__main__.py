"""`python -m ordersaga.console --host 127.0.0.1 --port N`: serve the console for the stack in
the run directory (`ORDERSAGA_HOME`, else ./.ordersaga) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 8077


def serve(run_dir: Path, host: str, port: int, announce=print, page_size: int = 0) -> None:
    import uvicorn  # the `stack` extra

    from ordersaga.console.app import create_app
    from ordersaga.console.backend import PAGE_SIZE, Backend

    # A page's request may wait on a slow ListOrders: Ctrl-C waits for it 5 s at most.
    backend = Backend(run_dir, page_size or PAGE_SIZE)
    config = uvicorn.Config(create_app(backend), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    announce(f"Console for the stack in {run_dir}: http://{host}:{port}/ (Ctrl-C stops it)")
    server.run()  # handles SIGINT/SIGTERM itself: finishes open requests, then returns


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ordersaga.console", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--page-size", type=int, default=0, metavar="N",
                        help="orders per page of the list (default 200, at most 1000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ordersaga.stack.layout import run_dir_from_env

    args = parser().parse_args(argv)
    serve(run_dir_from_env(), args.host, args.port, announce=lambda m: print(m, file=sys.stderr, flush=True),
          page_size=min(max(args.page_size, 0), 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
