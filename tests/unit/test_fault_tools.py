"""The stack's fault tools without a stack: every hop routed through its proxy, and pauses."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ordersaga.stack import pause, processes, toxiproxy
from ordersaga.stack.kafka import KafkaDist
from ordersaga.stack.layout import HOST, Ports, StackState
from ordersaga.stack.postgres import PostgresServer
from ordersaga.stack.profiles import Embedded, Production
from ordersaga.stack.runtime import DaprBinaries
from ordersaga.stack.stack import Stack

FAKE_DAPR = DaprBinaries(Path("/x/daprd"), Path("/x/placement"), Path("/x/scheduler"), Path("/x/sentry"), "1.18.3",
                         "env")


def routed_specs(tmp_path, profile: str, replicas: int):
    state = StackState(tmp_path, Ports.allocate(replicas), profile=profile, replicas=replicas)
    toxiproxy.plan(state, create=True)
    chosen = Embedded() if profile == "embedded" else Production()
    if profile == "production":
        chosen._postgres = PostgresServer(Path("/x/pg"), 15, None)
        chosen._kafka = KafkaDist(Path("/x/kafka"), "java")
    stack = Stack(tmp_path)
    stack._toxiproxy_binary = Path("/x/toxiproxy-server")
    return state, {spec.name: spec for spec in stack._specs(state, FAKE_DAPR, chosen)}


def flag(spec, name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in spec.argv if arg.startswith(f"--{name}="))


@pytest.mark.parametrize("profile, replicas", [("embedded", 1), ("production", 2)])
def test_every_hop_of_a_proxied_stack_goes_through_its_own_proxy(tmp_path, profile, replicas):
    state, specs = routed_specs(tmp_path, profile, replicas)
    hops = {hop.name: hop for hop in toxiproxy.hops(state, toxiproxy.plan(state))}
    assert list(specs)[0] == "toxiproxy" and specs["toxiproxy"].kind == "proxy"
    listens = [hop.listen for hop in hops.values()]
    assert len(listens) == len(set(listens)), "two proxies on one port"
    sidecars = [name for name, spec in specs.items() if spec.kind == "sidecar"]
    assert len(sidecars) == 4 * replicas
    for name in sidecars:
        spec = specs[name]
        assert flag(spec, "placement-host-address") == hops[f"{name}>placement"].listen
        assert hops[f"{name}>placement"].upstream == f"{HOST}:{state.ports.placement}"
        assert flag(spec, "scheduler-host-address") == hops["sidecars>scheduler"].listen
        # Its peers reach it at its advertised address, the proxy's; it listens behind it.
        internal = flag(spec, "dapr-internal-grpc-port")
        assert flag(spec, "dapr-internal-grpc-listen-address") == toxiproxy.PEER_HOST
        assert hops[f"peers>{name}"].listen == f"{HOST}:{internal}"
        assert hops[f"peers>{name}"].upstream == f"{toxiproxy.PEER_HOST}:{internal}"
        if profile == "embedded":
            assert spec.env["ORDERSAGA_NATS_URL"] == f"nats://{hops[f'{name}>broker'].listen}"
        else:
            dsn = next(value for key, value in spec.env.items() if key.startswith("ORDERSAGA_PG_"))
            assert f"port={hops[f'{name}>store'].listen.rsplit(':', 1)[1]} " in dsn
            assert spec.env["ORDERSAGA_KAFKA_BROKERS"] == hops["sidecars>broker"].listen
    assert flag(specs["scheduler"], "override-broadcast-host-port") == hops["sidecars>scheduler"].listen


def test_kafka_advertises_its_proxy(tmp_path):
    state, specs = routed_specs(tmp_path, "production", 1)
    (tmp_path / "data").mkdir()
    config = tmp_path / "data" / "kafka.properties"
    import ordersaga.stack.kafka as kafka
    real_format = kafka.format_storage
    kafka.format_storage = lambda *args: None
    try:
        specs["kafka"].before_start()
    finally:
        kafka.format_storage = real_format
    port = toxiproxy.plan(state)["ports"]["sidecars>broker"]
    assert f"advertised.listeners=PLAINTEXT://{HOST}:{port}," in config.read_text()
    assert f"listeners=PLAINTEXT://{HOST}:{state.ports.kafka}," in config.read_text()


def test_a_stack_without_proxies_is_left_alone(tmp_path):
    state = StackState(tmp_path, Ports.allocate(1))
    specs = Stack(tmp_path)._specs(state, FAKE_DAPR, Embedded())
    assert "toxiproxy" not in {spec.name for spec in specs}
    assert flag(next(s for s in specs if s.kind == "sidecar"), "placement-host-address").endswith(
        f":{state.ports.placement}")


def sleeper(tmp_path) -> processes.ProcessRecord:
    record, _ = processes.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], env={},
                                cwd=tmp_path, log_path=tmp_path / "sleeper.log", tie_to_parent=True)
    return record


def test_a_paused_process_is_resumed_by_resume(tmp_path):
    record = sleeper(tmp_path)
    try:
        watchdog = pause.pause(record, resume_after_s=30)
        assert pause.is_paused(record) and processes.is_running(record)
        pause.resume(record, watchdog)
        time.sleep(0.1)
        assert not pause.is_paused(record)
        assert watchdog.poll() is not None, "the watchdog is gone with the pause"
    finally:
        processes.kill(record)


def test_the_watchdog_resumes_a_process_its_pauser_forgot(tmp_path):
    record = sleeper(tmp_path)
    try:
        watchdog = pause.pause(record, resume_after_s=0.5)
        assert pause.is_paused(record)
        watchdog.wait(timeout=10)
        assert not pause.is_paused(record)
    finally:
        processes.kill(record)


def test_only_a_group_leader_of_ours_is_paused(tmp_path):
    inner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in pytest's group
    try:
        record = processes.ProcessRecord("inner", inner.pid, processes.proc_start_time(inner.pid), "")
        with pytest.raises(pause.PauseError):
            pause.pause(record, 5)
    finally:
        inner.kill()
        inner.wait()


def test_a_child_tied_to_its_parent_outlives_the_thread_that_started_it(tmp_path):
    """The kernel's death signal follows the thread that forked: a stack restarted from a
    test's worker thread must not die with that thread."""
    started = []
    worker = threading.Thread(target=lambda: started.append(sleeper(tmp_path)))
    worker.start()
    worker.join()
    record = started[0]
    try:
        time.sleep(0.5)
        assert processes.is_running(record), "the child died with the thread that started it"
    finally:
        processes.kill(record)
