import signal
import sys

from ordersaga.stack import processes
from ordersaga.stack.layout import APPS, Ports, StackState, replica_name
from ordersaga.stack.processes import ProcessRecord
from ordersaga.stack.stack import stop_order


def test_allocated_ports_are_distinct_and_below_the_ephemeral_range():
    ports = Ports.allocate(replicas=3)
    values = [v for k, v in vars(ports).items() if k != "apps"]
    values += [port for replicas in ports.apps.values() for ap in replicas for port in vars(ap).values()]
    assert len(values) == len(set(values)) == len(ports.all_ports())
    assert all(20000 <= p < 32000 for p in values)
    assert set(ports.apps) == set(APPS)
    assert all(len(replicas) == 3 for replicas in ports.apps.values())


def test_more_replicas_keep_the_ports_of_the_running_ones():
    ports = Ports.allocate(replicas=1)
    first = {app: replicas[0] for app, replicas in ports.apps.items()}
    ports.ensure_replicas(2)
    assert {app: replicas[0] for app, replicas in ports.apps.items()} == first
    assert len(ports.all_ports()) == len(set(ports.all_ports()))


def test_state_round_trips_through_stack_json(tmp_path):
    state = StackState(tmp_path, Ports.allocate(2), dapr_version="1.18.3", profile="production", replicas=2)
    state.processes["nats"] = ProcessRecord("nats", 123, 456, str(tmp_path / "nats.log"), "broker")
    state.save()
    loaded = StackState.load(tmp_path)
    assert loaded.ports == state.ports
    assert loaded.processes == state.processes
    assert (loaded.dapr_version, loaded.profile, loaded.replicas) == ("1.18.3", "production", 2)
    assert loaded.postgres_password == state.postgres_password
    assert [ap.app_grpc for ap in loaded.app_ports("order-service")] == [
        ap.app_grpc for ap in state.ports.apps["order-service"][:2]]


def test_a_stack_json_from_before_replicas_still_loads(tmp_path):
    state = StackState(tmp_path, Ports.allocate(1))
    state.save()
    data = state.path.read_text().replace('"profile": "embedded",', "")
    import json

    old = json.loads(data)
    old["ports"]["apps"] = {app: replicas[0] for app, replicas in old["ports"]["apps"].items()}
    for field in ("postgres", "kafka", "kafka_controller"):
        del old["ports"][field]
    state.path.write_text(json.dumps(old))
    loaded = StackState.load(tmp_path)
    assert loaded.profile == "embedded" and loaded.replicas == 1
    assert loaded.app_ports("order-service")[0] == state.ports.apps["order-service"][0]
    assert loaded.ports.postgres not in {p for p in loaded.ports.all_ports() if p != loaded.ports.postgres}


def test_replica_names():
    assert [replica_name("order-service", i) for i in range(3)] == ["order-service", "order-service-2",
                                                                    "order-service-3"]


def record(name: str, kind: str = "") -> ProcessRecord:
    return ProcessRecord(name, 1, 1, "", kind)


def test_apps_stop_first_then_sidecars_control_plane_brokers_and_stores_last():
    records = [record("postgres", "store"), record("kafka", "broker"), record("placement", "control"),
               record("order-service-2", "app"), record("order-service-daprd", "sidecar"),
               record("inventory-service", "app")]
    order = stop_order(records)
    assert set(order[:2]) == {"order-service-2", "inventory-service"}
    assert order[2:] == ["order-service-daprd", "placement", "kafka", "postgres"]


def test_records_without_a_kind_are_ordered_by_name():
    order = stop_order([record("nats"), record("scheduler"), record("order-service-daprd"), record("order-service")])
    assert order == ["order-service", "order-service-daprd", "scheduler", "nats"]


def test_a_process_is_stopped_with_its_own_signal(tmp_path):
    """PostgreSQL's fast shutdown is SIGINT: the record remembers it and `stop` sends it."""
    script = ("import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *a: (print('got SIGINT', flush=True), "
              "sys.exit(0)))\ntime.sleep(60)")
    rec, _ = processes.spawn("fast", [sys.executable, "-c", script], env={}, cwd=tmp_path,
                                 log_path=tmp_path / "fast.log", tie_to_parent=True, stop_signal=signal.SIGINT)
    assert rec.stop_signal == signal.SIGINT
    import time

    time.sleep(0.3)  # let it install the handler
    processes.stop(rec, timeout=5)
    assert "got SIGINT" in (tmp_path / "fast.log").read_text()
