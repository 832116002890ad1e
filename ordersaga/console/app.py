"""The console's web app: three static pages (plain HTML, CSS and JS, no build step) and the
JSON API they poll. Every stack call runs in a worker thread (the gRPC client blocks).

Everything the pages show arrives as JSON and is put in the page as text, never as markup; the
Content-Security-Policy allows scripts from this server only, so even a mistake there could not
run a script that came in an order's free text.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import grpc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ordersaga.client import NoLiveSidecar
from ordersaga.console import views
from ordersaga.console.backend import Backend, NoStack, Refused

log = logging.getLogger("ordersaga.console")
STATIC = Path(__file__).parent / "static"
MAX_TEXT = 500  # characters of a reason, note or name taken from the page
MAX_ROWS = 500  # a page redrawn every two seconds stays light whatever the stack holds
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(backend: Backend) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    def page(name: str):
        async def serve(request: Request) -> Response:
            return FileResponse(STATIC / name, media_type="text/html")
        return serve

    async def list_orders(request: Request) -> Response:
        status = request.query_params.get("status", "").upper()[:32]
        query = request.query_params.get("q", "").strip()[:64]
        token = request.query_params.get("page", "")[:512]
        page, fetched, error = await run_in_threadpool(backend.orders, status, query, token)
        return JSONResponse({"orders": page["orders"][:MAX_ROWS], "matching": page["matching"],
                             "next_page_token": page["next_page_token"], "total": sum(page.get("counts", {}).values()),
                             "fetched_at": fetched, "error": error, "statuses": list(views.STATUSES)})

    async def get_order(request: Request) -> Response:
        order_id = request.path_params["order_id"]

        def read() -> dict:
            detail = views.order_detail(backend.order(order_id), now=datetime.now(timezone.utc))
            detail["trace_url"] = backend.trace_url(order_id)
            return detail
        return await answer(read)

    async def stats(request: Request) -> Response:
        rows, counts, error = await run_in_threadpool(backend.stats)
        return JSONResponse({**views.charts(rows, datetime.now(timezone.utc), counts=counts), "error": error})

    async def dead_letters(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(backend.dead_letters))

    async def act(request: Request) -> Response:
        order_id, action = request.path_params["order_id"], request.path_params["action"]
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        who = text(body, "by") or "console"
        calls = {
            "approve": lambda: backend.decide(order_id, "approve", who, text(body, "reason")),
            "reject": lambda: backend.decide(order_id, "reject", who, text(body, "reason")),
            "cancel": lambda: backend.cancel(order_id, text(body, "reason")),
            "retry": lambda: backend.retry(order_id, who),
            "close": lambda: backend.close(order_id, who, text(body, "note")),
        }
        if action not in calls:
            return error_response(404, "NOT_FOUND", f"no action {action!r}; one of {', '.join(calls)}")
        return await answer(calls[action])

    async def start_bulk(request: Request) -> Response:
        """A dry run ({"dry_run": true}), or a run with the number of orders the person typed
        ({"confirm_count": N}): the API refuses a run over more orders than that."""
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        count = body.get("confirm_count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return error_response(400, "INVALID_ARGUMENT", "confirm_count: the number of orders, as typed")
        dry_run = body.get("dry_run") is True
        if not dry_run and not count:
            return error_response(400, "INVALID_ARGUMENT", "confirm_count: type the number of orders to act on")
        return await answer(lambda: backend.bulk(text(body, "action"), text(body, "status").upper(), text(body, "q"),
                                                 text(body, "by") or "console", text(body, "note"), dry_run, count))

    async def bulk_status(request: Request) -> Response:
        return await answer(lambda: backend.bulk_status(request.path_params["bulk_id"]))

    async def bulk_actions(request: Request) -> Response:
        return await answer(lambda: {"bulk_actions": backend.bulk_actions()})

    async def redrive(request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and len(i) < 64 for i in ids):
            return error_response(400, "INVALID_ARGUMENT", "ids: the dead letters to send back")
        return await answer(lambda: backend.redrive(ids[:1000], dry_run=body.get("dry_run") is True))

    routes = [
        Route("/healthz", healthz),
        Route("/", page("index.html")),
        Route("/orders/{order_id}", page("order.html")),
        Route("/dead-letters", page("letters.html")),
        Route("/api/orders", list_orders),
        Route("/api/orders/{order_id}", get_order),
        Route("/api/orders/{order_id}/{action}", act, methods=["POST"]),
        Route("/api/stats", stats),
        Route("/api/dead-letters", dead_letters),
        Route("/api/dead-letters/redrive", redrive, methods=["POST"]),
        Route("/api/bulk", start_bulk, methods=["POST"]),
        Route("/api/bulk", bulk_actions),
        Route("/api/bulk/{bulk_id}", bulk_status),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (a plain ASGI middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def answer(call) -> Response:
    """Run a stack call; the API's refusal becomes its code and message, never a traceback."""
    try:
        return JSONResponse(await run_in_threadpool(call))
    except grpc.RpcError as error:
        status, body = views.refusal(error.code(), error.details())
        return JSONResponse(body, status_code=status)
    except Refused as refused:
        status, body = views.refusal(refused.code, refused.details)
        return JSONResponse(body, status_code=status)
    except (NoStack, NoLiveSidecar) as error:
        return error_response(503, "UNAVAILABLE", str(error))
    except Exception as error:  # noqa: BLE001 - the page gets one line; the log gets the traceback
        log.exception("console request failed")
        return error_response(500, "INTERNAL", f"the console failed: {type(error).__name__}: {error}")


async def json_body(request: Request) -> dict | Response:
    """The JSON object a POST carries, or the answer that refuses it."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        # A form on another site cannot send JSON without the browser asking first (CORS).
        return error_response(415, "INVALID_ARGUMENT", "actions take a JSON body")
    try:
        body = await request.json()
    except ValueError:
        return error_response(400, "INVALID_ARGUMENT", "the body is not JSON")
    if not isinstance(body, dict):
        return error_response(400, "INVALID_ARGUMENT", "the body must be a JSON object")
    return body


def error_response(status: int, code: str, details: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "details": details}}, status_code=status)


def text(body: dict, key: str) -> str:
    value = body.get(key, "")
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""
