"""Fault injection for the downstream services: an error rate and an added delay.

A server interceptor applies them to the service's business calls (never to admin, health or
reflection calls), and the `ordersaga.faults.v1.Faults` service changes them at run time.
Injected errors are UNAVAILABLE: technical failures, which the saga retries. A delay after the
work makes a late reply: the service did it, the caller hears of it after its deadline.

Rules narrow faults to some orders: a call whose idempotency key starts with a rule's prefix
takes that rule's faults (the first rule for its key and method; no others), so concurrent
scenarios can each hold their own steps.
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
        self._used: dict[int, int] = {}
        self._random = random.Random()

    # -- admin service ---------------------------------------------------------------------

    def Set(self, request: faults_pb2.FaultSettings, context) -> faults_pb2.FaultSettings:
        for faults in [request, *request.rules]:
            if not 0.0 <= faults.error_rate <= 1.0:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "error_rate must be between 0 and 1")
            if not (0.0 <= faults.delay_seconds <= 3600 and 0.0 <= faults.delay_after_seconds <= 3600):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "delays must be between 0 and 3600 seconds")
        known = {m.rsplit("/", 1)[-1] for m in self._methods}
        named = set(request.methods).union(*(rule.methods for rule in request.rules))
        unknown = sorted(named - known)
        if unknown:
            # At most the start of a few names: a status message over 8 KiB reaches the client
            # as RESOURCE_EXHAUSTED instead.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown methods {[name[:64] for name in unknown[:5]]}; faults apply to {sorted(known)}")
        with self._lock:
            self._settings = faults_pb2.FaultSettings()
            self._settings.CopyFrom(request)
            self._used = {}  # calls each counted rule has met, by its place in the rules
        log.warning("faults set: error_rate=%.2f delay=%.2fs delay_after=%.2fs methods=%s", request.error_rate,
                    request.delay_seconds, request.delay_after_seconds, list(request.methods) or "all")
        for rule in request.rules:
            log.warning("faults set for keys %s*: error_rate=%.2f delay=%.2fs delay_after=%.2fs methods=%s",
                        rule.key_prefix, rule.error_rate, rule.delay_seconds, rule.delay_after_seconds,
                        list(rule.methods) or "all")
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
            key = getattr(request, "idempotency_key", "")
            with self._lock:
                faults = self._faults_for(name, key)
                error_rate, delay = (faults.error_rate, faults.delay_seconds) if faults else (0.0, 0.0)
                delay_after = faults.delay_after_seconds if faults else 0.0
            if faults is None:
                return inner(request, context)
            if delay:
                log.warning("injected delay of %.2fs before %s key=%s", delay, name, key)
                time.sleep(delay)
            if error_rate and self._random.random() < error_rate:
                log.warning("injected fault on %s key=%s", method, key)
                context.abort(grpc.StatusCode.UNAVAILABLE, f"injected fault on {method}")
            reply = inner(request, context)
            if delay_after:  # the work is done and stored; the caller has not heard yet
                log.warning("injected delay of %.2fs after %s key=%s (done, not yet answered)", delay_after, name,
                            key)
                time.sleep(delay_after)
            return reply

        return grpc.unary_unary_rpc_method_handler(
            with_faults,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


    def _faults_for(self, name: str, key: str):
        """The first rule for this call's key and method; None when rules name the key but not
        this method; else the global settings, when they apply to this method."""
        keyed = [(i, rule) for i, rule in enumerate(self._settings.rules) if key.startswith(rule.key_prefix)]
        if keyed:
            index, rule = next(((i, r) for i, r in keyed if not r.methods or name in r.methods), (None, None))
            if rule is not None and rule.times:
                self._used[index] = self._used.get(index, 0) + 1
                if self._used[index] > rule.times:
                    return faults_pb2.FaultRule()  # used up: this call and the next ones go through as they are
            return rule
        settings = self._settings
        return settings if not settings.methods or name in settings.methods else None


def methods_of(service_descriptor, names: list[str]) -> set[str]:
    return {f"/{service_descriptor.full_name}/{name}" for name in names}
