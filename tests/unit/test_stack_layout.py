from dataclasses import asdict

from ordersaga.stack.layout import APPS, Ports, StackState
from ordersaga.stack.processes import ProcessRecord
from ordersaga.stack.stack import stop_order


def all_ports(ports: Ports) -> list[int]:
    values = [v for k, v in asdict(ports).items() if k != "apps"]
    for app in asdict(ports)["apps"].values():
        values.extend(app.values())
    return values


def test_allocated_ports_are_distinct_and_below_the_ephemeral_range():
    ports = Ports.allocate()
    values = all_ports(ports)
    assert len(values) == len(set(values))
    assert all(20000 <= p < 32000 for p in values)
    assert set(ports.apps) == set(APPS)


def test_state_round_trips_through_stack_json(tmp_path):
    state = StackState(tmp_path, Ports.allocate(), dapr_version="1.18.3")
    state.processes["nats"] = ProcessRecord("nats", 123, 456, str(tmp_path / "nats.log"))
    state.save()
    loaded = StackState.load(tmp_path)
    assert loaded.ports == state.ports
    assert loaded.processes == state.processes
    assert loaded.dapr_version == "1.18.3"


def test_apps_stop_before_sidecars_and_the_broker_last():
    names = ["nats", "placement", "scheduler", "order-service", "order-service-daprd", "inventory-service"]
    order = stop_order(names)
    assert order[:2] == ["order-service", "inventory-service"]
    assert order[2] == "order-service-daprd"
    assert order[-1] == "nats"
