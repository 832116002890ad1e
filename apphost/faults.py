"""Fault injection for the downstream services: an error rate and an added delay.

A server interceptor applies them to the service's business calls (never to admin, health or
reflection calls), and the `ordersaga.faults.v1.Faults` service changes them at run time.
Injected errors are UNAVAILABLE: technical failures, which the saga retries.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import grpc

from apphost import faults_pb2, faults_pb2_grpc

SERVICE_NAME = faults_pb2.DESCRIPTOR.services_by_name["Faults"].full_name
# "on" installs this service and its interceptor (apphost.server); off or unset, neither exists.
FAULT_INJECTION_ENV = "ORDERSAGA_FAULT_INJECTION"
log = logging.getLogger("apphost.faults")


class FaultInjector(grpc.ServerInterceptor, faults_pb2_grpc.FaultsServicer):
    def __init__(self, business_methods: set[str]):
        """`business_methods`: full method names (/pkg.Service/Method) that faults apply to."""
        self._methods = business_methods
        self._lock = threading.Lock()
        self._settings = faults_pb2.FaultSettings()
        self._random = random.Random()

    # -- admin service ---------------------------------------------------------------------

    def Set(self, request: faults_pb2.FaultSettings, context) -> faults_pb2.FaultSettings:
        if not 0.0 <= request.error_rate <= 1.0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "error_rate must be between 0 and 1")
        if not (0.0 <= request.delay_seconds <= 3600 and 0.0 <= request.delay_after_seconds <= 3600):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "delays must be between 0 and 3600 seconds")
        known = {m.rsplit("/", 1)[-1] for m in self._methods}
        unknown = sorted(set(request.methods) - known)
        if unknown:
            # At most the start of a few names: a status message over 8 KiB reaches the client
            # as RESOURCE_EXHAUSTED instead.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown methods {[name[:64] for name in unknown[:5]]}; faults apply to {sorted(known)}")
        with self._lock:
            self._settings = faults_pb2.FaultSettings()
            self._settings.CopyFrom(request)
        log.warning("faults set: error_rate=%.2f delay=%.2fs methods=%s", request.error_rate,
                    request.delay_seconds, list(request.methods) or "all")
        return request

    def Get(self, request, context) -> faults_pb2.FaultSettings:
        with self._lock:
            current = faults_pb2.FaultSettings()
            current.CopyFrom(self._settings)
            return current

    # -- interceptor -----------------------------------------------------------------------

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in self._methods or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        name = method.rsplit("/", 1)[-1]

        def with_faults(request, context):
            with self._lock:
                targeted = not self._settings.methods or name in self._settings.methods
                error_rate, delay = self._settings.error_rate, self._settings.delay_seconds
                delay_after = self._settings.delay_after_seconds
            if not targeted:
                return inner(request, context)
            if delay:
                time.sleep(delay)
            if error_rate and self._random.random() < error_rate:
                log.warning("injected fault on %s", method)
                context.abort(grpc.StatusCode.UNAVAILABLE, f"injected fault on {method}")
            reply = inner(request, context)
            if delay_after:  # the work is done and stored; the caller has not heard yet
                time.sleep(delay_after)
            return reply

        return grpc.unary_unary_rpc_method_handler(
            with_faults,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def methods_of(service_descriptor, names: list[str]) -> set[str]:
    return {f"/{service_descriptor.full_name}/{name}" for name in names}
