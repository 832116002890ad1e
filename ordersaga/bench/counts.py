"""What one saga does, counted from the sidecars' own Prometheus metrics (the bench's stack serves
them: SIDECAR_METRICS_ENV), as the difference over a step divided by the sagas it completed.
Counters are what daprd counts itself, so nothing here is estimated, with one exception said in
the line: the retention purge (one scheduler job per finished saga) fires after the bench's
retention delay, outside the step.
"""

from __future__ import annotations

import collections
import re
import urllib.request

from ordersaga.stack.layout import HOST, StackState

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Key = tuple[str, str, frozenset]  # app id, metric name, labels

WANTED = ("dapr_grpc_io_server_completed_rpcs", "dapr_runtime_actor_reminders_fired_total",
          "dapr_runtime_service_invocation_req_sent_total", "dapr_component_state_count",
          "dapr_component_pubsub_egress_count")


def parse(text: str, app: str) -> dict[Key, float]:
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or not match.group(1).startswith(WANTED):
            continue
        labels = frozenset(_LABEL.findall(match.group(2) or ""))
        samples[(app, match.group(1), labels)] = float(match.group(3))
    return samples


def snapshot(state: StackState) -> dict[Key, float]:
    """Every sidecar's counters now (all replicas summed under their app id)."""
    total: dict[Key, float] = collections.defaultdict(float)
    for app in state.ports.apps:
        for ports in state.app_ports(app):
            with urllib.request.urlopen(f"http://{HOST}:{ports.dapr_metrics}/metrics", timeout=10) as reply:
                for key, value in parse(reply.read().decode(), app).items():
                    total[key] += value
    return dict(total)


def _sum(delta: dict[Key, float], metric: str, app: str | None = None, **labels: str) -> float:
    want = set(labels.items())
    return sum(value for (a, name, have), value in delta.items()
               if name == metric and (app is None or a == app) and want <= set(have))


def _rpcs(delta, app: str, method: str) -> float:
    return _sum(delta, "dapr_grpc_io_server_completed_rpcs", app, grpc_server_method=method)


def per_saga(before: dict[Key, float], after: dict[Key, float], sagas: int) -> dict[str, float]:
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    n = max(sagas, 1)
    api = "/dapr.proto.runtime.v1.Dapr/"
    actor_calls = _rpcs(delta, "order-service", api + "InvokeActor")
    actor_reminders = _sum(delta, "dapr_runtime_actor_reminders_fired_total", "order-service", actor_type="OrderActor")
    workflow_reminders = (_sum(delta, "dapr_runtime_actor_reminders_fired_total", "order-service",
                               actor_type="dapr.internal.default.order-service.workflow")
                          + _sum(delta, "dapr_runtime_actor_reminders_fired_total", "order-service",
                                 actor_type="dapr.internal.default.order-service.activity"))
    service_calls = sum(value for (app, name, labels), value in delta.items()
                        if app == "order-service" and name == "dapr_runtime_service_invocation_req_sent_total"
                        and ("dst_app_id", "order-service") not in labels)
    services_state = {app: _sum(delta, "dapr_component_state_count", app, operation="transaction")
                      for app in ("inventory-service", "payment-service", "shipping-service")}
    return {
        "actor turns": (actor_calls + actor_reminders) / n,
        "actor state writes": _rpcs(delta, "order-service", api + "ExecuteActorStateTransaction") / n,
        "actor reminders set": _rpcs(delta, "order-service", api + "RegisterActorReminder") / n,
        "workflow reminders fired": workflow_reminders / n,
        "engine turns": (_rpcs(delta, "order-service", "/TaskHubSidecarService/CompleteOrchestratorTask")
                         + _rpcs(delta, "order-service", "/TaskHubSidecarService/CompleteActivityTask")) / n,
        "service calls": service_calls / n,
        "service state transactions": sum(services_state.values()) / n,
        "order-store writes (index)": _sum(delta, "dapr_component_state_count", "order-service", operation="set") / n,
        "published events": _sum(delta, "dapr_component_pubsub_egress_count", success="true") / n,
    }


def counts_line(label: str, counts: dict[str, float]) -> str:
    jobs = counts["actor reminders set"] + counts["workflow reminders fired"]
    return (f"    per saga, {label}: " + ", ".join(f"{name} {value:.1f}" for name, value in counts.items())
            + f"; scheduler jobs {jobs:.1f} (+1 retention purge per finished saga, after the step)")
