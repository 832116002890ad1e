"""What the supervisor starts: one process's command, ports, health probe and hooks."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ordersaga.stack.layout import HOST

# Start order: stores, brokers, the certificate authority (Sentry), the trace backend
# (--observe) and the fault proxies (a proxied stack), then the control plane, then the apps with
# their sidecars (and the --observe console beside them).
WAVES = (("store", "broker", "ca", "telemetry", "proxy"), ("control",), ("app", "sidecar", "console"))


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    ports: list[int]
    healthy: Callable[[], bool]
    kind: str  # "store", "broker", "ca", "telemetry", "proxy", "control", "app", "sidecar" or "console"
    app_id: str = ""
    before_start: Callable[[], None] | None = None  # e.g. initdb, formatting a log directory
    after_start: Callable[[], None] | None = None  # e.g. creating databases, streams, topics
    user: str | None = None  # run as this system user (servers that refuse root)
    stop_signal: int = signal.SIGTERM


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def grpc_serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"{HOST}:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
