"""Run one of the apps: a Dapr gRPC app server with health and reflection, and a clean shutdown.

Each service's `__main__` is its composition root and hands this module what to serve. The
host binds the app's gRPC server on 127.0.0.1 (`APP_PORT`; `ORDERSAGA_BIND_HOST` overrides),
waits for its sidecar, runs the service's async start-up (actor host, workflow worker...), and
only then reports SERVING on `grpc.health.v1`, which is what `ordersaga up` waits for. SIGTERM
and SIGINT stop the service: NOT_SERVING first, then the service's own shutdown, then the server
with a short grace period.

Fault injection (apphost/faults.py) is a test tool, off unless the deployment turns it on with
ORDERSAGA_FAULT_INJECTION=on (`ordersaga up` does; the image and the Helm chart do not by
default): when off, neither the Faults service nor its interceptor exists in the app.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import threading
from concurrent import futures
from typing import Awaitable, Callable

import grpc
from dapr.clients.health import DaprHealth
from dapr.ext.grpc import App
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from apphost import faults_pb2_grpc, logs, observability
from apphost.faults import FAULT_INJECTION_ENV, FaultInjector, methods_of
from apphost.faults import SERVICE_NAME as FAULTS_SERVICE

Startup = Callable[[], Awaitable[Callable[[], Awaitable[None]] | None]]
# Why the service no longer serves what it exists for, or None while it does (checked after start).
Liveness = Callable[[], str | None]
LIVENESS_EVERY_S = 5.0

log = logging.getLogger("apphost.server")


def configure_logging(app_id: str) -> None:
    """One line per event, with time, app and logger: text for people, or JSON (apphost.logs)."""
    logs.configure(app_id)


# Open without the app token: health probes, and the subscription list, which daprd 1.18.3
# asks for without adding the token (it adds it to the event deliveries themselves).
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/dapr.proto.runtime.v1.AppCallback/ListTopicSubscriptions")


class AppTokenGuard(grpc.ServerInterceptor):
    """Refuses every call without the app token (`dapr-api-token` = APP_API_TOKEN), which
    daprd adds to what it forwards to the app; see _OPEN_METHODS for the exceptions."""

    def __init__(self, token: str):
        self._token = token

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_OPEN_METHODS):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if hmac.compare_digest(metadata.get("dapr-api-token", ""), self._token):
            return continuation(handler_call_details)
        return _refusal(continuation(handler_call_details))


def _refusal(handler):
    def refuse(request_or_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong app API token (dapr-api-token)")

    if handler is None:
        return None
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(refuse, handler.request_deserializer, handler.response_serializer)


class _Undecodable:
    def __init__(self, reason: str):
        self.reason = reason


class UndecodableRequestGuard(grpc.ServerInterceptor):
    """Refuses a request whose bytes are not the method's message (e.g. a string that is not
    UTF-8, which proto3 forbids) with INVALID_ARGUMENT; gRPC itself answers INTERNAL
    ("Exception deserializing request!"), which reads as a server fault."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or not (handler.unary_unary or handler.unary_stream):
            return handler
        parse, method = handler.request_deserializer, handler_call_details.method

        def lenient(data: bytes):
            try:
                return parse(data)
            except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and UnicodeDecodeError
                return _Undecodable(str(error) or type(error).__name__)

        def guarded(behaviour):
            def call(request, context):
                if isinstance(request, _Undecodable):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"the request is not a valid message for {method}: {request.reason}")
                return behaviour(request, context)
            return call

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(guarded(handler.unary_unary), lenient,
                                                       handler.response_serializer)
        return grpc.unary_stream_rpc_method_handler(guarded(handler.unary_stream), lenient, handler.response_serializer)


def new_app(max_workers: int = 16, interceptors: list[grpc.ServerInterceptor] | None = None) -> App:
    """The app's gRPC server; with APP_API_TOKEN set, only callers that carry it get through."""
    guard = [AppTokenGuard(os.environ["APP_API_TOKEN"])] if os.environ.get("APP_API_TOKEN") else []
    # Outermost, so refusals of the others count too; only in an observed stack (`up --observe`).
    observed = [observability.ObservedCalls()] if observability.enabled() else []
    # dapr.ext.grpc.App passes keyword arguments straight to grpc.server().
    return App(thread_pool=futures.ThreadPoolExecutor(max_workers=max_workers),
               interceptors=observed + guard + [UndecodableRequestGuard()] + list(interceptors or []))


def fault_injection_enabled(environ=os.environ) -> bool:
    """ORDERSAGA_FAULT_INJECTION: "on" installs the Faults service; "off" or unset does not."""
    value = environ.get(FAULT_INJECTION_ENV, "off")
    if value not in ("on", "off"):
        raise ValueError(f"{FAULT_INJECTION_ENV} must be on or off, not {value[:32]!r}")
    return value == "on"


def service_app(service, servicer, add_to_server, business_methods: list[str],
                fault_injection: bool) -> tuple[App, list[str]]:
    """One downstream service's app (`service` is its proto ServiceDescriptor) and the names of
    its gRPC services; with `fault_injection`, faults apply to `business_methods` and the Faults
    admin service sits beside it."""
    injector = FaultInjector(methods_of(service, business_methods)) if fault_injection else None
    app = new_app(interceptors=[injector] if injector else [])
    app.add_external_service(add_to_server, servicer)
    if not injector:
        return app, [service.full_name]
    app.add_external_service(faults_pb2_grpc.add_FaultsServicer_to_server, injector)
    return app, [service.full_name, FAULTS_SERVICE]


def run_service(app_id: str, service, servicer, add_to_server, business_methods: list[str]) -> None:
    """Serve one downstream service; fault injection as ORDERSAGA_FAULT_INJECTION says."""
    enabled = fault_injection_enabled()
    app, names = service_app(service, servicer, add_to_server, business_methods, enabled)
    if enabled:
        log.warning("fault injection is on (%s=on): the %s service can slow or fail %s",
                    FAULT_INJECTION_ENV, FAULTS_SERVICE, ", ".join(business_methods))
    run(app_id, app, names)


def run(app_id: str, app: App, service_names: list[str], startup: Startup | None = None,
        liveness: Liveness | None = None) -> None:
    """Serve `app` until SIGTERM/SIGINT. `service_names` are the full names of the app's own
    gRPC services, advertised through server reflection next to the health service. Health
    follows `liveness` once the service has started: NOT_SERVING for good when it says why."""
    configure_logging(app_id)
    observability.setup(app_id)
    try:
        asyncio.run(_serve(app_id, app, service_names, startup, liveness))
    finally:
        observability.shutdown()  # the last spans reach Zipkin


async def follow_liveness(app_id: str, health_servicer, names: list[str], liveness: Liveness,
                          every_s: float = LIVENESS_EVERY_S) -> str:
    """Check `liveness` every `every_s`; once it names a reason, report NOT_SERVING on every
    name (a supervisor restarts the process: Kubernetes' liveness probe) and return it."""
    while True:
        await asyncio.sleep(every_s)
        reason = liveness()
        if reason:
            log.error("%s no longer serves: %s; health is NOT_SERVING, restart the process", app_id, reason)
            for name in names:
                health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            return reason


def add_health_and_reflection(app: App, service_names: list[str]) -> health.HealthServicer:
    """grpc.health.v1 (NOT_SERVING until the app says otherwise) and server reflection, which
    lists `service_names` beside them."""
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    app.add_external_service(health_pb2_grpc.add_HealthServicer_to_server, health_servicer)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    # add_external_service hands us the server; reflection needs nothing else from it.
    app.add_external_service(lambda names, server: reflection.enable_server_reflection(names, server), names)
    return health_servicer


async def _serve(app_id: str, app: App, service_names: list[str], startup: Startup | None,
                 liveness: Liveness | None = None) -> None:
    health_servicer = add_health_and_reflection(app, service_names)

    port = int(os.environ["APP_PORT"])
    # Loopback by default: only the sidecar beside the app calls it. In a Kubernetes pod the
    # kubelet's gRPC probe comes from outside the pod's loopback (the chart sets 0.0.0.0).
    host = os.environ.get("ORDERSAGA_BIND_HOST", "127.0.0.1")
    server_thread = threading.Thread(target=app.run, args=(port, host), name="grpc-server", daemon=True)
    server_thread.start()
    log.info("gRPC app server listening on %s:%d", host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await asyncio.to_thread(DaprHealth.wait_for_sidecar)
    shutdown = await startup() if startup else None
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s is ready", app_id)
    watching = asyncio.create_task(follow_liveness(app_id, health_servicer, ["", *service_names], liveness)) \
        if liveness else None

    await stop.wait()
    if watching:
        watching.cancel()
    log.info("%s shutting down", app_id)
    health_servicer.enter_graceful_shutdown()
    if shutdown:
        await shutdown()
    app._server.stop(grace=3).wait()  # App.stop() has no grace period; in-flight calls finish
    log.info("%s stopped", app_id)


def require(context: grpc.ServicerContext, condition: object, message: str) -> None:
    """Refuse a request with INVALID_ARGUMENT (and `message`) unless `condition` holds."""
    if not condition:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
