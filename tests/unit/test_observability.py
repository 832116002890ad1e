"""Observability without a stack: JSON logs, the rendered tracing Configuration, stack.json's
observe flag and ports, the supervisor's --observe processes, and `ordersaga top`'s arithmetic."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from apphost import observability
from apphost.logs import JsonFormatter, key_values
from ordersaga import top
from ordersaga.stack.layout import Ports, StackState
from ordersaga.stack.processes import ProcessRecord
from ordersaga.stack.profiles import config_file
from ordersaga.stack.runtime import DaprBinaries, project_root
from ordersaga.stack.stack import Stack, StackError, stop_order

# ---- JSON logs ---------------------------------------------------------------------------------


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("order_service.activities", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_key_values_keep_spaces_inside_a_value():
    assert key_values("order=o-1 step=cancel shipment attempt=2 outcome=ok detail=a b: c") == {
        "order_id": "o-1", "step": "cancel shipment", "attempt": "2", "outcome": "ok", "detail": "a b: c"}
    assert key_values("gRPC app server listening on 127.0.0.1:5000") == {}


def test_json_formatter_writes_one_object_with_the_saga_fields():
    line = JsonFormatter("order-service").format(
        _record("order=%s step=%s attempt=%d outcome=%s detail=%s", "o-17", "reserve", 3, "OUT_OF_STOCK", "sku-1"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "order_service.activities"
    assert entry["app"] == "order-service" and entry["time"].endswith("+00:00")
    assert entry["message"] == "order=o-17 step=reserve attempt=3 outcome=OUT_OF_STOCK detail=sku-1"
    assert (entry["order_id"], entry["step"], entry["attempt"], entry["outcome"]) == ("o-17", "reserve", 3,
                                                                                      "OUT_OF_STOCK")
    assert entry["fields"] == {"detail": "sku-1"}
    assert "trace_id" not in entry  # no span was current


def test_json_formatter_takes_extra_fields_and_the_current_trace_id():
    tracer = TracerProvider().get_tracer("test")  # a recording span, without touching the global provider
    with tracer.start_as_current_span("step") as span:
        line = JsonFormatter("payment-service").format(_record("captured", order_id="o-2", step="capture",
                                                               outcome="ok", amount_cents=1250))
        trace_id = format(span.get_span_context().trace_id, "032x")
    entry = json.loads(line)
    assert (entry["order_id"], entry["step"], entry["outcome"]) == ("o-2", "capture", "ok")
    assert entry["fields"] == {"amount_cents": 1250}
    assert entry["trace_id"] == trace_id


def test_json_formatter_escapes_what_a_message_holds():
    entry = json.loads(JsonFormatter("x").format(_record('order=<b>"o"</b> quote " and\nnewline')))
    assert entry["message"] == 'order=<b>"o"</b> quote " and\nnewline'
    assert entry["order_id"] == '<b>"o"</b> quote " and\nnewline'


# ---- trace context helpers ---------------------------------------------------------------------

def test_trace_ids_and_order_ids():
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert observability.trace_id_of(parent) == "0af7651916cd43dd8448eb211c80319c"
    assert observability.trace_id_of("") == ""

    class Request:
        idempotency_key = "o-9:payment"
    assert observability.order_id_of(Request()) == "o-9"
    assert observability.order_id_of(object()) == ""


# ---- the stack: Configuration, stack.json, processes -------------------------------------------

def test_config_file_turns_tracing_on_only_for_an_observed_stack(tmp_path):
    components = project_root() / "components"
    assert config_file(components, tmp_path) == components / "config.yaml"
    rendered = config_file(components, tmp_path, "60", zipkin_endpoint="http://127.0.0.1:9411/api/v2/spans")
    text = rendered.read_text()
    assert rendered.parent == tmp_path
    assert 'samplingRate: "1"' in text and 'endpointAddress: "http://127.0.0.1:9411/api/v2/spans"' in text
    assert "anyTerminal: 60s" in text
    import yaml
    spec = yaml.safe_load(text)["spec"]
    assert spec["tracing"] == {"samplingRate": "1", "zipkin": {"endpointAddress": "http://127.0.0.1:9411/api/v2/spans"}}


def test_observe_and_metrics_ports_round_trip_through_stack_json(tmp_path):
    state = StackState(tmp_path, Ports.allocate(2), observe=True)
    state.save()
    loaded = StackState.load(tmp_path)
    assert loaded.observe is True and loaded.ports == state.ports
    ap = loaded.ports.apps["order-service"][1]
    assert ap.app_metrics and ap.dapr_metrics and ap.app_metrics != ap.dapr_metrics


def test_stack_json_from_before_observability_gets_ports(tmp_path):
    state = StackState(tmp_path, Ports.allocate(1))
    state.save()
    data = json.loads((tmp_path / "stack.json").read_text())
    del data["observe"], data["ports"]["zipkin"], data["ports"]["console"]
    for replicas in data["ports"]["apps"].values():
        for ports in replicas:
            del ports["app_metrics"], ports["dapr_metrics"]
    (tmp_path / "stack.json").write_text(json.dumps(data))
    loaded = StackState.load(tmp_path)
    loaded.ports.ensure_replicas(1)
    assert loaded.observe is False and loaded.ports.zipkin and loaded.ports.console
    assert all(ap.app_metrics and ap.dapr_metrics for r in loaded.ports.apps.values() for ap in r)
    assert len(loaded.ports.all_ports()) == len(set(loaded.ports.all_ports()))


def _specs(tmp_path: Path, observe: bool):
    from ordersaga.stack.profiles import Embedded

    stack = Stack(tmp_path / ".ordersaga", log=lambda message: None)
    state = StackState(stack.run_dir, Ports.allocate(1), observe=observe)
    stack.run_dir.mkdir(parents=True)
    fake = DaprBinaries(daprd=Path("daprd"), placement=Path("placement"), scheduler=Path("scheduler"),
                        sentry=Path("sentry"), version="1.18.3", source="test")
    return state, {s.name: s for s in stack._specs(state, fake, Embedded())}


def test_an_observed_stack_adds_zipkin_metrics_flags_and_tracing(tmp_path, monkeypatch):
    monkeypatch.setattr("ordersaga.stack.jetstream.nats_server_binary", lambda: "nats-server")
    state, specs = _specs(tmp_path, observe=True)
    ap = state.ports.apps["order-service"][0]
    assert specs["zipkin"].kind == "telemetry" and f"--armeria.ports[0].port={state.ports.zipkin}" in \
        specs["zipkin"].argv
    assert "--armeria.ports[0].ip=127.0.0.1" in specs["zipkin"].argv
    sidecar = specs["order-service-daprd"].argv
    assert "--enable-metrics" in sidecar and f"--metrics-port={ap.dapr_metrics}" in sidecar
    config = Path(next(a for a in sidecar if a.startswith("--config=")).removeprefix("--config="))
    assert config.parent == state.run_dir and f":{state.ports.zipkin}/api/v2/spans" in config.read_text()
    env = specs["order-service"].env
    assert env["ORDERSAGA_METRICS_PORT"] == str(ap.app_metrics)
    assert env["ORDERSAGA_ZIPKIN_ENDPOINT"] == f"http://127.0.0.1:{state.ports.zipkin}/api/v2/spans"
    if "console" in specs:  # only where the console's package is in the checkout
        assert specs["console"].argv[-4:] == ["--host", "127.0.0.1", "--port", str(state.ports.console)]
        assert specs["console"].env["ORDERSAGA_HOME"] == str(state.run_dir)


def test_an_unobserved_stack_runs_nothing_of_it(tmp_path, monkeypatch):
    monkeypatch.setattr("ordersaga.stack.jetstream.nats_server_binary", lambda: "nats-server")
    _, specs = _specs(tmp_path, observe=False)
    assert "zipkin" not in specs and "console" not in specs
    assert "--enable-metrics=false" in specs["order-service-daprd"].argv
    assert not any(a.startswith("--config=") and "config.yaml" in a and str(tmp_path) in a
                   for a in specs["order-service-daprd"].argv)
    assert "ORDERSAGA_METRICS_PORT" not in specs["order-service"].env


def test_zipkin_stops_last_and_the_console_first():
    records = [ProcessRecord(n, 1, 1, "", k) for n, k in
               (("zipkin", "telemetry"), ("nats", "broker"), ("console", "console"), ("order-service", "app"))]
    order = stop_order(records)
    assert order[-1] == "zipkin" and order.index("console") < order.index("nats")


def test_observe_cannot_change_while_the_stack_runs(tmp_path):
    import os

    state = StackState(tmp_path, Ports.allocate(1))
    with open(f"/proc/{os.getpid()}/stat") as stat:
        start = int(stat.read().rsplit(")", 1)[1].split()[19])
    state.processes["nats"] = ProcessRecord("nats", os.getpid(), start, "", "broker")  # "running": this process
    state.save()
    with pytest.raises(StackError, match="without --observe"):
        Stack(tmp_path)._load_or_new(None, None, observe=True)


# ---- ordersaga top -------------------------------------------------------------------------------

APP_METRICS = """
# TYPE ordersaga_orders_finished counter
ordersaga_orders_finished_total{status="COMPLETED",reason=""} 8
ordersaga_orders_finished_total{status="FAILED",reason="OUT_OF_STOCK"} 2
# TYPE ordersaga_orders_placed counter
ordersaga_orders_placed_total 13
# TYPE ordersaga_orders_in_flight gauge
ordersaga_orders_in_flight{status="RESERVING"} 2
ordersaga_orders_in_flight{status="AWAITING_APPROVAL"} 1
# TYPE ordersaga_approvals_waiting gauge
ordersaga_approvals_waiting 1
# TYPE ordersaga_step_seconds histogram
ordersaga_step_seconds_bucket{step="reserve",outcome="ok",le="0.05"} 4
ordersaga_step_seconds_bucket{step="reserve",outcome="ok",le="0.1"} 8
ordersaga_step_seconds_bucket{step="reserve",outcome="ok",le="+Inf"} 10
ordersaga_step_seconds_count{step="reserve",outcome="ok"} 10
ordersaga_step_seconds_sum{step="reserve",outcome="ok"} 0.7
ordersaga_step_seconds_bucket{step="reserve",outcome="error",le="0.05"} 0
ordersaga_step_seconds_bucket{step="reserve",outcome="error",le="0.1"} 1
ordersaga_step_seconds_bucket{step="reserve",outcome="error",le="+Inf"} 1
ordersaga_step_seconds_count{step="reserve",outcome="error"} 1
ordersaga_step_seconds_sum{step="reserve",outcome="error"} 0.08
# TYPE ordersaga_compensations counter
ordersaga_compensations_total{step="release",outcome="ok"} 2
# TYPE ordersaga_dead_letters counter
ordersaga_dead_letters_total{subscription="intake",reason="INVALID_ARGUMENT"} 1
# TYPE ordersaga_requests_refused counter
ordersaga_requests_refused_total{method="PlaceOrder",code="RESOURCE_EXHAUSTED"} 3
"""


def test_quantiles_interpolate_inside_a_bucket():
    buckets = {0.05: 4.0, 0.1: 8.0, float("inf"): 10.0}
    assert top.quantile(0.5, buckets) == pytest.approx(0.0625)
    assert top.quantile(0.2, buckets) == pytest.approx(0.025)
    assert top.quantile(0.95, buckets) == 0.1  # in +Inf: the largest finite bound
    assert top.quantile(0.5, {}) is None and top.quantile(0.5, {float("inf"): 0.0}) is None


def test_a_frame_adds_up_the_processes_and_rates_over_the_window():
    first = top.Snapshot(at=0.0, values=top.parse(APP_METRICS))
    last = top.Snapshot(at=2.0, values=top.parse(APP_METRICS, top.parse(APP_METRICS)))  # two replicas, later
    text = top.frame(first, last)
    assert "sagas/s   5.00" in text and "placed/s   6.50" in text
    assert "in flight     6" in text and "RESERVING 4" in text and "AWAITING_APPROVAL 2" in text
    assert "COMPLETED 16" in text and "OUT_OF_STOCK 4" in text
    reserve = next(line for line in text.splitlines() if line.startswith("reserve"))
    assert reserve.split() == ["reserve", "11", "1", "65", "100"]  # the window's calls: 22 - 11
    assert "release 4" in text and "intake 2" in text and "RESOURCE_EXHAUSTED 6" in text


def test_top_refuses_a_stack_without_observe(tmp_path):
    state = StackState(tmp_path, Ports.allocate(1))
    state.processes["nats"] = ProcessRecord("nats", 1, 1, "", "broker")
    state.save()
    with pytest.raises(StackError, match="not started with --observe"):
        top.run(tmp_path, once=True, out=io.StringIO())
    with pytest.raises(StackError, match="no stack is running"):
        top.run(tmp_path / "elsewhere", once=True, out=io.StringIO())


# ---- order metrics -------------------------------------------------------------------------------

def test_status_changes_count_an_order_once_where_it_ends():
    from prometheus_client import REGISTRY

    from order_service.domain import OrderStatus
    from order_service.metrics import IN_FLIGHT

    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (value("ordersaga_orders_placed_total"),
              value("ordersaga_orders_finished_total", status="FAILED", reason="OUT_OF_STOCK"),
              value("ordersaga_approvals_waiting"))
    IN_FLIGHT.note("m-1", None, OrderStatus.PLACED, "")
    IN_FLIGHT.note("m-1", OrderStatus.PLACED, OrderStatus.AWAITING_APPROVAL, "")
    assert value("ordersaga_approvals_waiting") == before[2] + 1
    assert value("ordersaga_orders_in_flight", status="AWAITING_APPROVAL") >= 1
    IN_FLIGHT.note("m-1", OrderStatus.AWAITING_APPROVAL, OrderStatus.FAILED, "OUT_OF_STOCK")
    IN_FLIGHT.note("m-1", OrderStatus.FAILED, OrderStatus.FAILED, "OUT_OF_STOCK")  # a later timeline entry
    assert value("ordersaga_orders_placed_total") == before[0] + 1
    assert value("ordersaga_orders_finished_total", status="FAILED", reason="OUT_OF_STOCK") == before[1] + 1
    assert value("ordersaga_approvals_waiting") == before[2]


def test_top_refreshes_until_ctrl_c(tmp_path, monkeypatch):
    state = StackState(tmp_path, Ports.allocate(1), observe=True)
    state.processes["nats"] = ProcessRecord("nats", 1, 1, "", "broker")
    state.save()
    snapshots = iter([top.Snapshot(at=0.0, values=top.parse(APP_METRICS)),
                      top.Snapshot(at=2.0, values=top.parse(APP_METRICS, top.parse(APP_METRICS)))])
    monkeypatch.setattr(top, "scrape", lambda endpoints: next(snapshots))
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(top.time, "sleep", sleep)
    out = io.StringIO()
    assert top.run(tmp_path, interval=1.5, out=out) == 0
    frames = out.getvalue().split("ordersaga top: ")[1:]
    assert len(frames) == 2 and sleeps == [1.5, 1.5]
    assert "(8 endpoints)" in frames[0] and "since start" in frames[0] and "sagas/s   5.00" in frames[1]
