"""The whole local stack: broker, placement, scheduler, and each app with its own daprd.

`Stack.up()` starts only what is not running (so `up` brings a killed process back), waits
until each process is healthy, and records pids and ports in `stack.json`. `Stack.down()` stops
everything in reverse order. A process that fails to become healthy is named in the error
together with the tail of its log.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ordersaga.stack import broker, processes
from ordersaga.stack.layout import APPS, HOST, Ports, StackState, free_port, port_free
from ordersaga.stack.runtime import DaprBinaries, ensure_dapr, project_root

DEFAULT_START_TIMEOUT_S = 90.0
START_RETRIES = 2


class StackError(RuntimeError):
    """A process of the stack failed; the message names it and shows its log's tail."""


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    ports: list[int]
    healthy: Callable[[], bool]
    kind: str  # "infra", "app" or "sidecar"
    app_id: str = ""
    after_start: Callable[[], None] | None = None


@dataclass
class Stack:
    run_dir: Path
    tie_to_parent: bool = False  # children die with this process (foreground up, test fixtures)
    log: Callable[[str], None] = print
    extra_env: dict[str, str] = field(default_factory=dict)  # passed to the apps (settings)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        # Popen handles of the processes this object started: kept so they are reaped, not leaked.
        self._children: dict[str, object] = {}

    # ---- public operations -------------------------------------------------------------

    def up(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> StackState:
        binaries = ensure_dapr(log=self.log)
        for sub in ("logs", "data", "data/nats", "data/scheduler"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        state = StackState.load(self.run_dir) or StackState(self.run_dir, Ports.allocate())
        state.dapr_version = binaries.version
        running = {n for n, rec in state.processes.items() if processes.is_running(rec)}
        specs = self._specs(state, binaries)
        missing = [s for s in specs if s.name not in running]
        if not missing:
            self.log(f"Stack already running in {self.run_dir}")
            return state
        self._reassign_busy_ports(state, specs, missing, running)
        specs = self._specs(state, binaries)  # ports may have changed
        missing = [s for s in specs if s.name not in running]
        self.log(f"Starting {', '.join(s.name for s in missing)} (Dapr {binaries.version}, {binaries.source})")

        # Start in dependency waves: the broker (and its stream) first, the control plane next,
        # then every app with its sidecar in parallel. A failed start stops what it started.
        started: list[str] = []
        try:
            for wave in (("infra-broker",), ("infra-control",), ("app", "sidecar")):
                batch = [s for s in missing if s.kind in wave]
                for spec in batch:
                    self._start(state, spec)
                    started.append(spec.name)
                state.save()
                self._wait_healthy(state, batch, timeout)
                for spec in batch:
                    if spec.after_start:
                        spec.after_start()
        except BaseException:
            for name in reversed(started):
                processes.stop(state.processes.pop(name), timeout=5)
            state.save()
            raise
        self.log(f"Stack is up: {len(specs)} processes healthy, run directory {self.run_dir}")
        return state

    def down(self, timeout: float = 15.0) -> list[str]:
        state = StackState.load(self.run_dir)
        if state is None:
            return []
        stopped = []
        for name in stop_order(state.processes):
            record = state.processes[name]
            if processes.is_running(record):
                processes.stop(record, timeout=timeout)
                stopped.append(name)
        state.processes.clear()
        state.save()
        return stopped

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would (tests use it)."""
        state = self._require_state()
        processes.kill(state.processes[name])

    def status(self) -> dict:
        state = StackState.load(self.run_dir)
        if state is None:
            return {"run_dir": str(self.run_dir), "running": False, "apps": {}, "processes": {}}
        procs = {
            name: {"pid": rec.pid, "running": processes.is_running(rec), "log": rec.log}
            for name, rec in state.processes.items()
        }
        apps = {}
        for app_id, ports in state.ports.apps.items():
            apps[app_id] = {
                "app_grpc_port": ports.app_grpc,
                "dapr_grpc_port": ports.dapr_grpc,
                "dapr_http_port": ports.dapr_http,
                "app_pid": procs.get(app_id, {}).get("pid"),
                "daprd_pid": procs.get(f"{app_id}-daprd", {}).get("pid"),
                "running": bool(
                    procs.get(app_id, {}).get("running") and procs.get(f"{app_id}-daprd", {}).get("running")
                ),
            }
        infra = {
            "nats": {"port": state.ports.nats, "monitor_port": state.ports.nats_monitor},
            "placement": {"port": state.ports.placement},
            "scheduler": {"port": state.ports.scheduler},
        }
        for name in infra:
            infra[name]["pid"] = procs.get(name, {}).get("pid")
            infra[name]["running"] = procs.get(name, {}).get("running", False)
        return {
            "run_dir": str(self.run_dir),
            "dapr_version": state.dapr_version,
            "running": bool(procs) and all(p["running"] for p in procs.values()),
            "apps": apps,
            "infrastructure": infra,
            "processes": procs,
        }

    def state(self) -> StackState:
        return self._require_state()

    # ---- process definitions -----------------------------------------------------------

    def _specs(self, state: StackState, dapr: DaprBinaries) -> list[ProcessSpec]:
        p = state.ports
        run = self.run_dir
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "APP_"))}
        tokens = {"DAPR_API_TOKEN": state.api_token, "APP_API_TOKEN": state.app_token}
        nats_conf = run / "data" / "nats.conf"
        nats_url = f"nats://{HOST}:{p.nats}"
        specs = [
            ProcessSpec(
                name="nats",
                argv=[broker.nats_server_binary(), "-c", str(nats_conf)],
                env=base_env,
                ports=[p.nats, p.nats_monitor],
                healthy=lambda: _http_ok(f"http://{HOST}:{p.nats_monitor}/healthz?js-enabled-only=true"),
                kind="infra-broker",
                after_start=lambda: broker.ensure_streams(nats_url),
            ),
            ProcessSpec(
                name="placement",
                argv=[
                    str(dapr.placement),
                    "--id=placement-0",
                    f"--initial-cluster=placement-0={HOST}:{p.placement_raft}",
                    f"--port={p.placement}",
                    f"--listen-address={HOST}",
                    f"--healthz-port={p.placement_healthz}",
                    f"--healthz-listen-address={HOST}",
                    "--enable-metrics=false",
                ],
                env=base_env,
                ports=[p.placement, p.placement_healthz, p.placement_raft],
                healthy=lambda: _http_ok(f"http://{HOST}:{p.placement_healthz}/healthz"),
                kind="infra-control",
            ),
            ProcessSpec(
                name="scheduler",
                argv=[
                    str(dapr.scheduler),
                    "--id=scheduler-0",
                    f"--port={p.scheduler}",
                    f"--listen-address={HOST}",
                    f"--override-broadcast-host-port={HOST}:{p.scheduler}",
                    f"--healthz-port={p.scheduler_healthz}",
                    f"--healthz-listen-address={HOST}",
                    "--enable-metrics=false",
                    f"--etcd-data-dir={run / 'data' / 'scheduler'}",
                    f"--etcd-initial-cluster=scheduler-0=http://{HOST}:{p.scheduler_etcd_peer}",
                    f"--etcd-client-port={p.scheduler_etcd_client}",
                    f"--etcd-client-listen-address={HOST}",
                ],
                env=base_env,
                ports=[p.scheduler, p.scheduler_healthz, p.scheduler_etcd_client, p.scheduler_etcd_peer],
                healthy=lambda: _http_ok(f"http://{HOST}:{p.scheduler_healthz}/healthz"),
                kind="infra-control",
            ),
        ]
        broker.write_config(
            nats_conf, host=HOST, port=p.nats, monitor_port=p.nats_monitor, store_dir=run / "data" / "nats"
        )
        components = project_root() / "components"
        for app_id, module in APPS.items():
            ap = p.apps[app_id]
            app_env = dict(
                base_env,
                **self.extra_env,
                **tokens,
                APP_PORT=str(ap.app_grpc),
                DAPR_RUNTIME_HOST=HOST,
                DAPR_GRPC_PORT=str(ap.dapr_grpc),
                DAPR_HTTP_PORT=str(ap.dapr_http),
                ORDERSAGA_APP_ID=app_id,
                PYTHONUNBUFFERED="1",
                # How long the SDK keeps reconnecting to a sidecar that went away (default 60 s,
                # after which the actor host stops serving for good).
                DAPR_HEALTH_TIMEOUT="900",
            )
            specs.append(
                ProcessSpec(
                    name=app_id,
                    argv=[sys.executable, "-m", module],
                    env=app_env,
                    ports=[ap.app_grpc],
                    healthy=lambda port=ap.app_grpc: _grpc_serving(port),
                    kind="app",
                    app_id=app_id,
                )
            )
            specs.append(
                ProcessSpec(
                    name=f"{app_id}-daprd",
                    argv=[
                        str(dapr.daprd),
                        f"--app-id={app_id}",
                        f"--app-port={ap.app_grpc}",
                        "--app-protocol=grpc",
                        f"--app-channel-address={HOST}",
                        f"--dapr-grpc-port={ap.dapr_grpc}",
                        f"--dapr-http-port={ap.dapr_http}",
                        f"--dapr-internal-grpc-port={ap.dapr_internal_grpc}",
                        f"--dapr-listen-addresses={HOST}",
                        f"--dapr-internal-grpc-listen-address={HOST}",
                        f"--placement-host-address={HOST}:{p.placement}",
                        f"--scheduler-host-address={HOST}:{p.scheduler}",
                        f"--resources-path={components}",
                        f"--resources-path={components / 'embedded'}",
                        f"--config={components / 'config.yaml'}",
                        "--enable-metrics=false",
                        f"--log-level={os.environ.get('ORDERSAGA_DAPR_LOG_LEVEL', 'info')}",
                    ],
                    env=dict(base_env, **tokens, DAPR_HOST_IP=HOST, ORDERSAGA_NATS_URL=nats_url),
                    ports=[ap.dapr_grpc, ap.dapr_http, ap.dapr_internal_grpc],
                    healthy=lambda port=ap.dapr_http: _http_ok(f"http://{HOST}:{port}/v1.0/healthz"),
                    kind="sidecar",
                    app_id=app_id,
                )
            )
        return specs

    # ---- mechanics ---------------------------------------------------------------------

    def _start(self, state: StackState, spec: ProcessSpec) -> None:
        record, child = processes.spawn(
            spec.name,
            spec.argv,
            env=spec.env,
            cwd=self.run_dir,  # relative paths in components/ resolve against the run directory
            log_path=self.run_dir / "logs" / f"{spec.name}.log",
            tie_to_parent=self.tie_to_parent,
        )
        self._children[spec.name] = child
        state.processes[spec.name] = record

    def _wait_healthy(self, state: StackState, specs: list[ProcessSpec], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {s.name: s for s in specs}
        retries = dict.fromkeys(pending, START_RETRIES)
        while pending:
            for name, spec in list(pending.items()):
                record = state.processes[name]
                if not processes.is_running(record) and retries[name] > 0:
                    # A crash at start-up (seen: a gRPC poller error) gets another chance,
                    # as a process supervisor would give it; a persistent one is reported.
                    retries[name] -= 1
                    self.log(f"  {name} exited during start-up; starting it again")
                    self._start(state, spec)
                    state.save()
                    continue
                if not processes.is_running(record):
                    raise StackError(
                        f"{name} exited during start-up. Last lines of {record.log}:\n"
                        f"{processes.log_tail(record.log)}"
                    )
                if spec.healthy():
                    pending.pop(name)
                    self.log(f"  {name:<26} healthy (pid {record.pid})")
            if pending and time.monotonic() > deadline:
                name = sorted(pending)[0]
                record = state.processes[name]
                raise StackError(
                    f"{name} did not become healthy within {timeout:.0f}s "
                    f"(still waiting for {', '.join(sorted(pending))}). Last lines of {record.log}:\n"
                    f"{processes.log_tail(record.log)}"
                )
            time.sleep(0.2)

    def _reassign_busy_ports(
        self, state: StackState, specs: list[ProcessSpec], missing: list[ProcessSpec], running: set[str]
    ) -> None:
        """A stopped stack holds no ports, so another stack may have taken some meanwhile.

        Only on a cold start: a process restarted beside running ones must come back on its
        own ports (the others point at them), and its old connections may still linger there.
        """
        if running:
            return
        taken = {port for spec in specs for port in spec.ports}
        busy = [port for spec in missing for port in spec.ports if not port_free(port)]
        if not busy:
            return
        replace = {port: free_port(taken) for port in busy}
        p = state.ports
        for name in list(vars(p)):
            if name != "apps" and getattr(p, name) in replace:
                setattr(p, name, replace[getattr(p, name)])
        for app_ports in p.apps.values():
            for name, value in list(vars(app_ports).items()):
                if value in replace:
                    setattr(app_ports, name, replace[value])
        self.log(f"Ports {busy} were taken by other programs; moved to {list(replace.values())}")

    def _require_state(self) -> StackState:
        state = StackState.load(self.run_dir)
        if state is None:
            raise StackError(f"no stack in {self.run_dir}: run `ordersaga up` first")
        return state


def stop_order(names) -> list[str]:
    """Apps first (they drain through their sidecars), then sidecars, control plane, broker last."""
    rank = {"placement": 2, "scheduler": 2, "nats": 3}

    def position(name: str) -> int:
        if name in APPS:
            return 0
        return 1 if name.endswith("-daprd") else rank.get(name, 2)

    return sorted(names, key=position)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _grpc_serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"{HOST}:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
