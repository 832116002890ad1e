"""Traces and metrics of an app, switched on by `ordersaga up --observe` through its environment.

- `ORDERSAGA_METRICS_PORT`: Prometheus metrics (prometheus_client) served on 127.0.0.1:PORT.
- `ORDERSAGA_ZIPKIN_ENDPOINT`: OpenTelemetry spans exported to that Zipkin endpoint.

Without them nothing is served or exported: the metric objects still count (a few integer
additions), and spans are never recorded (OpenTelemetry's default no-op provider).

Trace context travels as W3C `traceparent`, the header daprd reads and forwards on every gRPC
and HTTP call, so a call through a sidecar links to the span of the caller. A span is recorded
when its parent was, or when it is marked as a trace root (`ROOT`): an API call that changes
something (PlaceOrder, CancelOrder...) without a `traceparent` from its client starts the
order's trace. Nothing else starts one: not the SDK's own gRPC polling, the health checks, or a
client polling GetOrder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram

log = logging.getLogger("apphost.observability")
TRACER_NAME = "ordersaga"
ORDER_ID = "order.id"  # the span attribute (a Zipkin tag) that finds an order's trace
ROOT = "ordersaga.trace_root"  # a span attribute: this span may start a trace


class MarkedRoots(Sampler):
    """Spans without a parent: recorded only when marked with the `ROOT` attribute."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        if (attributes or {}).get(ROOT):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "MarkedRoots"

_provider = None  # the SDK TracerProvider once tracing is on, flushed at shutdown

# gRPC answers that refuse a request rather than fail it: the caller's input or the load.
REFUSALS = frozenset({"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "ALREADY_EXISTS", "FAILED_PRECONDITION",
                      "NOT_FOUND", "UNAUTHENTICATED"})
REQUESTS_REFUSED = Counter("ordersaga_requests_refused", "Requests refused, by method and gRPC code "
                           "(RESOURCE_EXHAUSTED is admission control, INVALID_ARGUMENT bad input)",
                           ["method", "code"])
REQUEST_SECONDS = Histogram("ordersaga_grpc_server_seconds", "Time to answer a unary gRPC call, by method and code",
                            ["method", "code"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))


def enabled() -> bool:
    """Whether this process was started to be observed (`up --observe`)."""
    return bool(os.environ.get("ORDERSAGA_METRICS_PORT") or os.environ.get("ORDERSAGA_ZIPKIN_ENDPOINT"))


def setup(app_id: str) -> None:
    """Start the metrics endpoint and the span exporter the environment asks for."""
    port = os.environ.get("ORDERSAGA_METRICS_PORT")
    if port:
        from prometheus_client import start_http_server

        start_http_server(int(port), addr=os.environ.get("ORDERSAGA_METRICS_HOST", "127.0.0.1"))
        log.info("Prometheus metrics on port %s", port)
    endpoint = os.environ.get("ORDERSAGA_ZIPKIN_ENDPOINT")
    if endpoint:
        _start_tracing(app_id, endpoint)


def _start_tracing(app_id: str, endpoint: str) -> None:
    global _provider
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _provider = TracerProvider(resource=Resource.create({"service.name": app_id}),
                               sampler=ParentBased(root=MarkedRoots()))
    # Short delay: a test (or a person) looks for an order's trace seconds after it ended.
    _provider.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=endpoint), schedule_delay_millis=500))
    trace.set_tracer_provider(_provider)
    log.info("traces exported to %s", endpoint)


def shutdown() -> None:
    """Export what is buffered before the process ends."""
    if _provider is not None:
        _provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


# ---- carrying the context --------------------------------------------------------------------

def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" when there is none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def trace_carrier() -> dict[str, str]:
    """The current span's `traceparent` as a map (empty without one)."""
    parent = current_traceparent()
    return {"traceparent": parent} if parent else {}


def trace_metadata() -> tuple:
    """gRPC metadata that carries the current span to a sidecar (empty without one)."""
    parent = current_traceparent()
    return (("traceparent", parent),) if parent else ()


def context_from(traceparent: str | None):
    """An OpenTelemetry context whose parent is `traceparent` (None: no parent)."""
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def trace_id_of(traceparent: str | None) -> str:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else ""


def current_trace_id() -> str:
    """The current span's trace id in hex ("" when none), for log lines."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


@contextlib.contextmanager
def span(name: str, *, parent: str | None = None, link: str | None = None, order_id: str = "",
         kind: SpanKind = SpanKind.INTERNAL, attributes: dict | None = None):
    """A span named `name`, child of `parent` (a traceparent) or else of the current span, with
    the order id as a tag and optionally a link to another trace's span."""
    links = []
    if link:
        linked = trace.get_current_span(context_from(link)).get_span_context()
        if linked.is_valid:
            links.append(Link(linked))
    attrs = dict(attributes or {})
    if order_id:
        attrs[ORDER_ID] = order_id
    ctx = context_from(parent) if parent else None
    with tracer().start_as_current_span(name, context=ctx, kind=kind, attributes=attrs, links=links) as current:
        yield current


# ---- the gRPC server side --------------------------------------------------------------------

def order_id_of(request) -> str:
    """The order a request is about: its `order_id`, or the order part of its idempotency key
    (`order:step`), which every downstream call carries."""
    order_id = getattr(request, "order_id", "") or ""
    if not order_id:
        key = getattr(request, "idempotency_key", "") or ""
        order_id = key.split(":", 1)[0] if ":" in key else ""
    return order_id if isinstance(order_id, str) else ""


_UNOBSERVED = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/dapr.proto.runtime.v1.AppCallback/ListTopic",
               "/dapr.proto.runtime.v1.AppCallbackHealthCheck/")


_READS = ("Get", "List", "Watch")


class ObservedCalls(grpc.ServerInterceptor):
    """For every unary call an app serves: a SERVER span, child of the caller's `traceparent`
    (what daprd forwards), with the order id as a tag; the call's time; a count of refusals."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(_UNOBSERVED):
            return handler
        inner = handler.unary_unary
        metadata = dict(handler_call_details.invocation_metadata or ())
        parent = metadata.get("traceparent")
        short = method.rsplit("/", 1)[-1]
        # Reads (a client polling GetOrder) are traced only in their caller's trace, and not
        # tagged with the order: the tag finds the trace of the order's own work, one per order.
        # Pub/sub deliveries come with the publisher's context; the rest may start a trace.
        tag_order = not short.startswith(_READS)
        attributes = {"rpc.method": short}
        if tag_order and not method.startswith("/dapr.proto."):
            attributes[ROOT] = True

        def observed(request, context):
            started = time.monotonic()
            code = "OK"
            ctx = context_from(parent) or otel_context.Context()  # never a thread's leftover span
            with tracer().start_as_current_span(method.lstrip("/"), context=ctx, kind=SpanKind.SERVER,
                                                attributes=attributes) as current:
                order_id = order_id_of(request) if tag_order else ""
                if order_id and current.is_recording():
                    current.set_attribute(ORDER_ID, order_id)
                if getattr(request, "topic", "") and current.is_recording():  # a pub/sub delivery
                    current.update_name(f"pubsub receive {request.topic}")
                try:
                    return inner(request, context)
                except BaseException:
                    code = _code_name(context) or "UNKNOWN"
                    raise
                finally:
                    code = _code_name(context) or code
                    if code != "OK":
                        current.set_status(Status(StatusCode.ERROR, code))
                        current.set_attribute("rpc.grpc.status_code", code)
                    if code in REFUSALS:
                        REQUESTS_REFUSED.labels(short, code).inc()
                    REQUEST_SECONDS.labels(short, code).observe(time.monotonic() - started)

        return grpc.unary_unary_rpc_method_handler(
            observed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def _code_name(context) -> str:
    """The status the handler set (with `abort` or `set_code`); "" when it set none."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else ""
