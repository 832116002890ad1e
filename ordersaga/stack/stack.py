"""The whole local stack: stores and broker, placement, scheduler, and each app's replicas, every
replica with its own daprd.

`Stack.up()` starts only what is not running (so `up` brings a killed process back), waits
until each process is healthy, and records pids and ports in `stack.json`. `Stack.down()` stops
everything in reverse order. A process that fails to become healthy is named in the error
together with the tail of its log, and what that `up` started is stopped again. What differs
between the embedded and the production profile lives in `profiles.py`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from apphost.faults import FAULT_INJECTION_ENV
from ordersaga.stack import processes, sentry, toxiproxy, zipkin
from ordersaga.stack.layout import (
    APPS,
    HOST,
    Ports,
    StackState,
    default_profile,
    free_port,
    port_free,
    replica_name,
)
from ordersaga.stack.profiles import RETENTION_ENV, config_file, resources_paths
from ordersaga.stack.profiles import profile as profile_named
from ordersaga.stack.runtime import DaprBinaries, ensure_dapr, project_root
from ordersaga.stack.specs import WAVES, ProcessSpec, grpc_serving, http_ok

DEFAULT_START_TIMEOUT_S = 90.0
SIDECAR_METRICS_ENV = "ORDERSAGA_SIDECAR_METRICS"  # "1": the sidecars serve Prometheus metrics
START_RETRIES = 2
# How fast placement drops a host that stopped answering (a paused or cut-off sidecar; a killed
# one closes its stream and is dropped at once): a ping every second, 2 s to answer it (defaults
# 2 s and 3 s). tests/production's failover test measures what it buys. The dissemination
# timeout stays at its default (8 s): at 4 s, on a loaded machine, placement dropped a slow
# sidecar in the middle of a rebalance and never disseminated again, and every actor call hung
# (the chaos suite's scheduler-window test; upstream dapr/dapr#9885 is open on that path).
PLACEMENT_FAILURE_DETECTION = ["--keepalive-time=1s", "--keepalive-timeout=2s"]
# The scheduler's embedded etcd keeps every revision of every job for a million revisions and a
# hundred thousand raft entries in memory by default (Dapr's values): with thousands of orders
# waiting, most of its memory (docs/performance.md, "100,000 orders waiting"). Old revisions go
# after 5 minutes here, and a snapshot is taken every 10,000 entries. ORDERSAGA_SCHEDULER_ETCD
# replaces these flags (empty: Dapr's defaults), for benches that compare.
SCHEDULER_ETCD_FLAGS = "--etcd-compaction-mode=periodic --etcd-compaction-retention=5m --etcd-snapshot-count=10000"


class StackError(RuntimeError):
    """A process of the stack failed; the message names it and shows its log's tail."""


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

    def _setting(self, name: str) -> str | None:
        """A stack setting: from `extra_env`, else from this process's environment."""
        return self.extra_env.get(name) or os.environ.get(name)

    def _setting_or(self, name: str, default: str) -> str:
        """A setting that may be set to empty on purpose."""
        for source in (self.extra_env, os.environ):
            if name in source:
                return source[name]
        return default

    # ---- public operations -------------------------------------------------------------

    def up(self, timeout: float = DEFAULT_START_TIMEOUT_S, profile: str | None = None,
           replicas: int | None = None, observe: bool | None = None, proxied: bool = False) -> StackState:
        """Start what is missing. `profile`, `replicas` and `observe` default to the stack's own
        (from stack.json), or to ORDERSAGA_PROFILE, 1 and off for a new one. `proxied`: route the
        stack's network hops through fault proxies (ordersaga/stack/toxiproxy.py), from a cold
        start on; a stack started so stays so."""
        if replicas is not None and replicas < 1:
            raise StackError(f"--replicas must be at least 1, not {replicas}")
        state = self._load_or_new(profile, replicas, observe)
        chosen = profile_named(state.profile)
        chosen.prepare(self.log)  # binaries found, installed or fetched: nothing has started yet
        if state.observe:
            try:
                self._zipkin_jar = zipkin.ensure_zipkin(self.log)
            except zipkin.ZipkinUnavailable as error:
                raise StackError(str(error)) from None
        binaries = ensure_dapr(log=self.log)
        state.dapr_version = binaries.version
        self._proxies(state, proxied)
        for sub in ("logs", "data", "data/nats", "data/scheduler"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._stop_surplus_replicas(state)
        running = {n for n, rec in state.processes.items() if processes.is_running(rec)}
        specs = self._specs(state, binaries, chosen)
        for name in set(state.processes) - running - {s.name for s in specs}:
            del state.processes[name]  # dead and no longer part of the stack (another profile's broker)
        missing = [s for s in specs if s.name not in running]
        if not missing:
            state.save()
            self.log(f"Stack already running in {self.run_dir} ({state.profile}, {state.replicas} replica(s))")
            return state
        self._reassign_busy_ports(state, specs, missing, running)
        specs = self._specs(state, binaries, chosen)  # ports may have changed
        missing = [s for s in specs if s.name not in running]
        self.log(f"Starting {', '.join(s.name for s in missing)} "
                 f"(profile {state.profile}, Dapr {binaries.version}, {binaries.source})")

        # Start in dependency waves: stores and broker first, the control plane next, then every
        # app with its sidecar in parallel. Before the apps: the profile's streams or topics.
        started: list[str] = []
        try:
            for wave in WAVES:
                batch = [s for s in missing if s.kind in wave]
                if "app" in wave and batch:
                    self._step("provision", lambda: chosen.provision(state), state)
                for spec in batch:
                    if spec.before_start:
                        self._step(spec.name, spec.before_start, state)
                    self._start(state, spec)
                    started.append(spec.name)
                state.save()
                self._wait_healthy(state, batch, timeout)
                for spec in batch:
                    if spec.after_start:
                        self._step(spec.name, spec.after_start, state)
        except BaseException:
            for name in reversed(started):
                processes.stop(state.processes.pop(name), timeout=5)
            state.save()
            raise
        self.log(f"Stack is up: {len(specs)} processes healthy ({state.profile} profile, "
                 f"{state.replicas} replica(s) per app{', observed' if state.observe else ''}), "
                 f"run directory {self.run_dir}")
        return state

    def down(self, timeout: float = 15.0) -> list[str]:
        state = StackState.load(self.run_dir)
        if state is None:
            return []
        stopped = []
        for name in stop_order(state.processes.values()):
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
        for app_id in APPS:
            replicas = []
            for index, ports in enumerate(state.app_ports(app_id)):
                name = replica_name(app_id, index)
                app, sidecar = procs.get(name, {}), procs.get(f"{name}-daprd", {})
                replicas.append({
                    "app_grpc_port": ports.app_grpc,
                    "dapr_grpc_port": ports.dapr_grpc,
                    "dapr_http_port": ports.dapr_http,
                    "app_pid": app.get("pid"),
                    "daprd_pid": sidecar.get("pid"),
                    "running": bool(app.get("running") and sidecar.get("running")),
                })
            apps[app_id] = dict(replicas[0], replicas=replicas)  # the first replica's fields, as before
        infra_ports = {
            "nats": {"port": state.ports.nats, "monitor_port": state.ports.nats_monitor},
            "postgres": {"port": state.ports.postgres},
            "kafka": {"port": state.ports.kafka, "controller_port": state.ports.kafka_controller},
            "placement": {"port": state.ports.placement},
            "scheduler": {"port": state.ports.scheduler},
            "sentry": {"port": state.ports.sentry},
        }
        infra = {}
        for name, ports in infra_ports.items():
            if name in procs:
                infra[name] = dict(ports, pid=procs[name]["pid"], running=procs[name]["running"])
        result = {
            "run_dir": str(self.run_dir),
            "profile": state.profile,
            "replicas": state.replicas,
            "dapr_version": state.dapr_version,
            "mtls": bool(state.mtls),
            "running": bool(procs) and all(p["running"] for p in procs.values()),
            "apps": apps,
            "infrastructure": infra,
            "processes": procs,
        }
        if state.observe:
            result["observability"] = observability(state)
        return result

    def state(self) -> StackState:
        return self._require_state()

    # ---- process definitions -----------------------------------------------------------

    def _load_or_new(self, profile: str | None, replicas: int | None, observe: bool | None = None) -> StackState:
        state = StackState.load(self.run_dir)
        try:
            mtls = sentry.mtls_setting(self._setting(sentry.MTLS_ENV))
        except ValueError as error:
            raise StackError(str(error)) from None
        if state is None:
            wanted = profile or default_profile()
            profile_named(wanted)  # an unknown name fails before anything is written
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return StackState(self.run_dir, Ports.allocate(replicas or 1), profile=wanted, replicas=replicas or 1,
                              observe=bool(observe), mtls=mtls is not False)
        self._choose_mtls(state, mtls)
        if observe is not None and observe != state.observe:
            # Every sidecar and app would need other flags: a restart of the whole stack.
            if any(processes.is_running(rec) for rec in state.processes.values()):
                now = "with" if state.observe else "without"
                raise StackError(f"the stack in {self.run_dir} runs {now} --observe: "
                                 f"`ordersaga down` first to start it {'without' if state.observe else 'with'} it")
            state.observe = observe
        if profile and profile != state.profile:
            if any(processes.is_running(rec) for rec in state.processes.values()):
                raise StackError(f"the stack in {self.run_dir} runs the {state.profile} profile: "
                                 f"`ordersaga down` first to start it as {profile}")
            profile_named(profile)
            state.profile = profile  # each profile keeps its data in files of its own
        if replicas:
            state.replicas = replicas
        state.ports.ensure_replicas(state.replicas)
        return state

    def _choose_mtls(self, state: StackState, wanted: bool | None) -> None:
        """ORDERSAGA_MTLS unset: the stack's own; else the stack turns to it, on a cold start only."""
        running = any(processes.is_running(rec) for rec in state.processes.values())
        if running and (state.mtls is None or (wanted is not None and wanted != state.mtls)):
            now = "without" if not state.mtls else "with"
            raise StackError(f"the stack in {self.run_dir} runs {now} mTLS: `ordersaga down` first to start it "
                             f"{'with' if now == 'without' else 'without'} it")
        state.mtls = wanted if wanted is not None else state.mtls is not False

    def _stop_surplus_replicas(self, state: StackState) -> None:
        """`up --replicas N` below the running count stops the replicas above N."""
        wanted = {spec_name for app_id in APPS for i in range(state.replicas)
                  for spec_name in (replica_name(app_id, i), f"{replica_name(app_id, i)}-daprd")}
        for name, record in list(state.processes.items()):
            if record.kind in ("app", "sidecar") and name not in wanted:
                self.log(f"  stopping {name}: beyond {state.replicas} replica(s)")
                processes.stop(record, timeout=15)
                del state.processes[name]

    def _specs(self, state: StackState, dapr: DaprBinaries, chosen) -> list[ProcessSpec]:
        p = state.ports
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "APP_"))}
        # mTLS: Sentry, and its flags for placement, scheduler and every sidecar (stack/sentry.py).
        cold = not any(processes.is_running(record) for record in state.processes.values())
        creds = sentry.ensure_credentials(self.run_dir, renew=cold) if state.mtls else None
        tls = sentry.control_plane_flags(state, creds) if creds else []
        specs = chosen.infra_specs(state, base_env) + ([sentry.sentry_spec(dapr.sentry, state, creds, base_env)]
                                                       if creds else []) + [
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
                    *PLACEMENT_FAILURE_DETECTION,
                    *tls,
                ],
                env=dict(base_env, **(sentry.control_plane_env(creds, "dapr-placement") if creds else {})),
                ports=[p.placement, p.placement_healthz, p.placement_raft],
                healthy=lambda: http_ok(f"http://{HOST}:{p.placement_healthz}/healthz"),
                kind="control",
            ),
            ProcessSpec(
                name="scheduler",
                argv=[
                    str(dapr.scheduler),
                    f"--id={sentry.SCHEDULER_ID}",
                    f"--port={p.scheduler}",
                    f"--listen-address={HOST}",
                    f"--override-broadcast-host-port={HOST}:{p.scheduler}",
                    f"--healthz-port={p.scheduler_healthz}",
                    f"--healthz-listen-address={HOST}",
                    "--enable-metrics=false",
                    f"--etcd-data-dir={self.run_dir / 'data' / 'scheduler'}",
                    f"--etcd-initial-cluster={sentry.SCHEDULER_ID}=http://{HOST}:{p.scheduler_etcd_peer}",
                    f"--etcd-client-port={p.scheduler_etcd_client}",
                    f"--etcd-client-listen-address={HOST}",
                    *(self._setting_or("ORDERSAGA_SCHEDULER_ETCD", SCHEDULER_ETCD_FLAGS)).split(),
                    *tls,
                    *([f"--identity-directory-write={creds.scheduler_identity_dir}"] if creds else []),
                ],
                env=dict(base_env, **(sentry.control_plane_env(creds, "dapr-scheduler") if creds else {})),
                ports=[p.scheduler, p.scheduler_healthz, p.scheduler_etcd_client, p.scheduler_etcd_peer],
                healthy=lambda: http_ok(f"http://{HOST}:{p.scheduler_healthz}/healthz"),
                kind="control",
                before_start=lambda: sentry.adopt_scheduler_data(self.run_dir / "data" / "scheduler"),
            ),
        ]
        for app_id in APPS:
            for index, ports in enumerate(state.app_ports(app_id)):
                specs += self._replica_specs(state, dapr, chosen, app_id, index, ports, base_env)
        if state.observe:
            specs += self._observe_specs(state, base_env)
        if toxiproxy.enabled(self.run_dir):
            specs = toxiproxy.route(state, specs, getattr(self, "_toxiproxy_binary", None))
        return specs

    def _proxies(self, state: StackState, wanted: bool) -> None:
        """Fault proxies: planned on a cold start when `wanted`, built once, moved off ports
        taken meanwhile on a cold start."""
        cold = not any(processes.is_running(rec) for rec in state.processes.values())
        if wanted and not toxiproxy.enabled(self.run_dir):
            if not cold:
                raise StackError(f"the stack in {self.run_dir} runs without fault proxies: "
                                 "`ordersaga down` first to start it with them")
            toxiproxy.plan(state, create=True)
        if toxiproxy.enabled(self.run_dir):
            try:
                self._toxiproxy_binary = toxiproxy.ensure_toxiproxy(self.log)
            except toxiproxy.ProxyError as error:
                raise StackError(str(error)) from None
            plan = toxiproxy.plan(state)
            if cold:
                toxiproxy.reassign_busy(state, plan)
            elif "toxiproxy" in state.processes and processes.is_running(state.processes["toxiproxy"]):
                toxiproxy.Toxiproxy(plan["ports"]["api"]).ensure(toxiproxy.hops(state, plan))  # replicas added

    def _observe_specs(self, state: StackState, base_env: dict[str, str]) -> list[ProcessSpec]:
        """`--observe`: the trace backend (first wave, so the first spans have somewhere to go)
        and the web console (beside the apps; it talks to the public API like any client)."""
        p = state.ports
        jar = getattr(self, "_zipkin_jar", None) or zipkin.jar_path()
        specs = [ProcessSpec(
            name="zipkin",
            argv=zipkin.server_argv(jar, HOST, p.zipkin),
            env=zipkin.server_env(base_env),
            ports=[p.zipkin],
            healthy=lambda: http_ok(f"{zipkin.api_url(HOST, p.zipkin)}/health"),
            kind="telemetry",
        )]
        if not (project_root() / "ordersaga" / "console" / "__main__.py").is_file():
            if not getattr(self, "_console_missing_said", False):
                self._console_missing_said = True
                self.log("  (no web console in this checkout: ordersaga/console is missing; skipped)")
            return specs
        specs.append(ProcessSpec(
            name="console",
            argv=[sys.executable, "-m", "ordersaga.console", "--host", HOST, "--port", str(p.console)],
            env=dict(base_env, ORDERSAGA_HOME=str(self.run_dir), PYTHONUNBUFFERED="1"),
            ports=[p.console],
            healthy=lambda: http_ok(f"http://{HOST}:{p.console}/healthz"),
            kind="console",
        ))
        return specs

    def _replica_specs(self, state, dapr, chosen, app_id, index, ap, base_env) -> list[ProcessSpec]:
        """One replica of an app: the Python app and its own daprd."""
        name = replica_name(app_id, index)
        tokens = {"DAPR_API_TOKEN": state.api_token, "APP_API_TOKEN": state.app_token}
        components = project_root() / "components"
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
        # The services' Faults API and interceptor (apphost/faults.py) exist only where the stack
        # turns them on: every local stack, for the chaos and fuzz suites and `ordersaga faults`.
        app_env.setdefault(FAULT_INJECTION_ENV, "on")
        zipkin_endpoint = zipkin.spans_endpoint(HOST, state.ports.zipkin) if state.observe else None
        if state.observe:  # read by apphost.observability: no metrics server, no tracer otherwise
            app_env.update(ORDERSAGA_METRICS_PORT=str(ap.app_metrics), ORDERSAGA_ZIPKIN_ENDPOINT=zipkin_endpoint)
        mtls_env = sentry.sidecar_env(sentry.credentials(self.run_dir), app_id) if state.mtls else {}
        config = config_file(components, self.run_dir, self._setting(RETENTION_ENV), zipkin_endpoint,
                             name=sentry.config_name(app_id, bool(state.mtls)))  # access control: sentry.py
        # The bench counts what a saga does from the sidecars' metrics (ordersaga/bench/counts.py)
        # without the rest of --observe: SIDECAR_METRICS_ENV=1 serves them alone.
        metrics_flags = ["--enable-metrics", f"--metrics-port={ap.dapr_metrics}", f"--metrics-listen-address={HOST}"] \
            if state.observe or self._setting(SIDECAR_METRICS_ENV) == "1" else \
            ["--enable-metrics=false"]
        sidecar_argv = [
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
            f"--placement-host-address={HOST}:{state.ports.placement}",
            f"--scheduler-host-address={HOST}:{state.ports.scheduler}",
            *(f"--resources-path={path}" for path in resources_paths(components, state.profile)),
            f"--config={config}",
            *(sentry.sidecar_flags(state) if state.mtls else []),
            *metrics_flags,
            f"--log-level={os.environ.get('ORDERSAGA_DAPR_LOG_LEVEL', 'info')}",
        ]
        return [
            ProcessSpec(
                name=name,
                argv=[sys.executable, "-m", APPS[app_id]],
                env=app_env,
                ports=[ap.app_grpc] + ([ap.app_metrics] if state.observe else []),
                healthy=lambda port=ap.app_grpc: grpc_serving(port),
                kind="app",
                app_id=app_id,
            ),
            ProcessSpec(
                name=f"{name}-daprd",
                argv=sidecar_argv,
                env=dict(base_env, **tokens, DAPR_HOST_IP=HOST, **chosen.sidecar_env(state, app_id), **mtls_env),
                ports=[ap.dapr_grpc, ap.dapr_http, ap.dapr_internal_grpc]
                + ([ap.dapr_metrics] if state.observe else []),
                healthy=lambda port=ap.dapr_http: http_ok(f"http://{HOST}:{port}/v1.0/healthz"),
                kind="sidecar",
                app_id=app_id,
            ),
        ]

    # ---- mechanics ---------------------------------------------------------------------

    def _start(self, state: StackState, spec: ProcessSpec) -> None:
        record, child = processes.spawn(
            spec.name,
            spec.argv,
            env=spec.env,
            cwd=self.run_dir,  # relative paths in components/ resolve against the run directory
            log_path=self.run_dir / "logs" / f"{spec.name}.log",
            tie_to_parent=self.tie_to_parent,
            kind=spec.kind,
            stop_signal=spec.stop_signal,
            user=spec.user,
        )
        self._children[spec.name] = child
        state.processes[spec.name] = record

    def _step(self, name: str, action: Callable[[], None], state: StackState) -> None:
        """A set-up step of a process (initdb, creating databases or topics): a failure names the
        process and shows its log's tail, like a process that fails to start."""
        try:
            action()
        except Exception as error:  # noqa: BLE001 - reported with the context a person needs
            record = state.processes.get(name)
            tail = f"\nLast lines of {record.log}:\n{processes.log_tail(record.log, 15)}" if record else ""
            raise StackError(f"{name}: {error}{tail}") from error

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
                try:
                    healthy = spec.healthy()
                except Exception as error:  # noqa: BLE001 - a refusal that waiting will not change
                    raise StackError(f"{name} refused to serve: {error}. Last lines of {record.log}:\n"
                                     f"{processes.log_tail(record.log, 15)}") from error
                if healthy:
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
        taken = state.ports.all_ports()
        busy = [port for spec in missing for port in spec.ports if not port_free(port)]
        if not busy:
            return
        replace = {port: free_port(taken) for port in busy}
        p = state.ports
        for name in list(vars(p)):
            if name != "apps" and getattr(p, name) in replace:
                setattr(p, name, replace[getattr(p, name)])
        for replicas in p.apps.values():
            for app_ports in replicas:
                for name, value in list(vars(app_ports).items()):
                    if value in replace:
                        setattr(app_ports, name, replace[value])
        self.log(f"Ports {busy} were taken by other programs; moved to {list(replace.values())}")

    def _require_state(self) -> StackState:
        state = StackState.load(self.run_dir)
        if state is None:
            raise StackError(f"no stack in {self.run_dir}: run `ordersaga up` first")
        return state


def stop_order(records) -> list[str]:
    """Apps first (they drain through their sidecars), then sidecars, the control plane, the
    broker, and the stores last."""
    rank = {"console": 0, "app": 0, "sidecar": 1, "control": 2, "ca": 3, "broker": 3, "store": 4, "telemetry": 5,
            "proxy": 5}

    infra = {"nats": "broker", "kafka": "broker", "postgres": "store", "placement": "control", "scheduler": "control",
             "sentry": "ca", "zipkin": "telemetry", "console": "console"}

    def position(record: processes.ProcessRecord) -> int:
        # Records written before kinds were kept: the names tell.
        guessed = infra.get(record.name) or ("sidecar" if record.name.endswith("-daprd") else "app")
        return rank[record.kind or guessed]

    return [record.name for record in sorted(records, key=position)]


def observability(state: StackState) -> dict:
    """`status --json`'s block of an `--observe` stack: where traces, the console and every
    process's Prometheus metrics are (`ordersaga top` reads them from here)."""
    metrics = {}
    for app_id in APPS:
        for index, ports in enumerate(state.app_ports(app_id)):
            name = replica_name(app_id, index)
            metrics[name] = f"http://{HOST}:{ports.app_metrics}/metrics"
            metrics[f"{name}-daprd"] = f"http://{HOST}:{ports.dapr_metrics}/metrics"
    console = "console" in state.processes
    return {
        # The server: its API under /api/v2/, its UI under /zipkin/.
        "zipkin_url": zipkin.api_url(HOST, state.ports.zipkin),
        "console_url": f"http://{HOST}:{state.ports.console}/" if console else None,
        "metrics": metrics,
    }
