"""Where a stack lives: its run directory, its ports and the state file that records both.

Every stack keeps everything under one run directory (`.ordersaga/` by default,
`ORDERSAGA_HOME` overrides): logs, data, rendered settings and `stack.json`. Ports are picked
at random from a range below the kernel's ephemeral range, checked free, and kept in
`stack.json` while any process of the stack runs, so a restarted process comes back on the same
ports. Two stacks on one machine (a test run beside a demo) therefore never collide.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ordersaga.stack.processes import ProcessRecord

# The DESIGN.md app ids and the Python module that runs each app.
APPS: dict[str, str] = {
    "order-service": "order_service",
    "inventory-service": "inventory_service",
    "payment-service": "payment_service",
    "shipping-service": "shipping_service",
}

HOST = "127.0.0.1"
_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range (32768+) used by outgoing sockets


def run_dir_from_env(cwd: Path | None = None) -> Path:
    home = os.environ.get("ORDERSAGA_HOME")
    return Path(home).resolve() if home else (cwd or Path.cwd()) / ".ordersaga"


@dataclass
class AppPorts:
    app_grpc: int
    dapr_grpc: int
    dapr_http: int
    dapr_internal_grpc: int
    # Prometheus endpoints of the app and its sidecar, served only by an `--observe` stack
    # (0 in a stack.json written before they existed: filled in by `ensure_replicas`).
    app_metrics: int = 0
    dapr_metrics: int = 0


@dataclass
class Ports:
    nats: int
    nats_monitor: int
    postgres: int
    kafka: int
    kafka_controller: int
    placement: int
    placement_healthz: int
    placement_raft: int
    scheduler: int
    scheduler_healthz: int
    scheduler_etcd_client: int
    scheduler_etcd_peer: int
    sentry: int  # the certificate authority of the stack's mTLS
    sentry_healthz: int
    zipkin: int  # --observe: the trace backend
    console: int  # --observe: the web console
    apps: dict[str, list[AppPorts]] = field(default_factory=dict)  # per app id, one per replica

    @classmethod
    def allocate(cls, replicas: int = 1) -> "Ports":
        taken: set[int] = set()
        infra = {name: free_port(taken) for name in cls.__dataclass_fields__ if name != "apps"}
        ports = cls(**infra, apps={app: [] for app in APPS})
        ports.ensure_replicas(replicas)
        return ports

    def all_ports(self) -> set[int]:
        infra = {value for name, value in vars(self).items() if name != "apps"}
        return infra | {port for replicas in self.apps.values() for ap in replicas for port in vars(ap).values()}

    def ensure_replicas(self, replicas: int) -> None:
        """Ports for `replicas` instances of every app; existing replicas keep theirs."""
        taken = self.all_ports()
        for app in APPS:
            have = self.apps.setdefault(app, [])
            while len(have) < replicas:
                have.append(AppPorts(*(free_port(taken) for _ in range(6))))
            for ports in have:
                ports.app_metrics = ports.app_metrics or free_port(taken)
                ports.dapr_metrics = ports.dapr_metrics or free_port(taken)

    @classmethod
    def from_json(cls, data: dict) -> "Ports":
        apps = {}
        for app, value in data.pop("apps").items():
            replicas = value if isinstance(value, list) else [value]  # stack.json before replicas
            apps[app] = [AppPorts(**ports) for ports in replicas]
        missing = {name for name in cls.__dataclass_fields__ if name not in data and name != "apps"}
        taken = {v for v in data.values()} | {p for r in apps.values() for ap in r for p in vars(ap).values()}
        data.update({name: free_port(taken) for name in sorted(missing)})  # a field added since
        return cls(**data, apps=apps)


def free_port(taken: set[int]) -> int:
    """A port on 127.0.0.1 that nothing listens on now and that this stack has not taken."""
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(*_PORT_RANGE)
        if port not in taken and port_free(port):
            taken.add(port)
            return port
    raise RuntimeError(f"no free port found in {_PORT_RANGE}")


def port_free(port: int) -> bool:
    """True when nothing listens on (or holds) `port` on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers bind with SO_REUSEADDR, so a port whose last connections linger in TIME_WAIT
        # is free for them; probe the same way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


PROFILES = ("embedded", "production")


def default_profile() -> str:
    return os.environ.get("ORDERSAGA_PROFILE", "embedded")


def replica_name(app_id: str, index: int) -> str:
    """The process name of an app's replica: `order-service`, then `order-service-2`, ..."""
    return app_id if index == 0 else f"{app_id}-{index + 1}"


@dataclass
class StackState:
    """The contents of `stack.json`: what `status` reports and `down` stops."""

    run_dir: Path
    ports: Ports
    dapr_version: str = ""
    profile: str = "embedded"
    replicas: int = 1
    # `up --observe`: a Zipkin server, Prometheus metrics on every app and sidecar, the console.
    observe: bool = False
    # mTLS between sidecars and with the control plane (Sentry signs), which Dapr's access
    # control needs; off only with ORDERSAGA_MTLS=off. None: a stack.json from before it (see
    # Stack.up, which decides then).
    mtls: bool | None = True
    # Sidecars refuse API calls without `api_token`; apps refuse calls without `app_token`
    # (daprd adds it to what it forwards). Generated once per run directory.
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    app_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # The production profile's PostgreSQL superuser password, fixed at the cluster's initdb.
    postgres_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: dict[str, ProcessRecord] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run_dir / "stack.json"

    def app_ports(self, app_id: str) -> list[AppPorts]:
        """The ports of the app's replicas that belong to the stack now."""
        return self.ports.apps[app_id][: self.replicas]

    def save(self) -> None:
        data = {
            "profile": self.profile,
            "replicas": self.replicas,
            "observe": self.observe,
            "mtls": self.mtls,
            "ports": asdict(self.ports),
            "dapr_version": self.dapr_version,
            "api_token": self.api_token,
            "app_token": self.app_token,
            "postgres_password": self.postgres_password,
            "processes": {name: rec.to_json() for name, rec in self.processes.items()},
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the tokens
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(data, indent=2))
        tmp.replace(self.path)

    @classmethod
    def load(cls, run_dir: Path) -> "StackState | None":
        path = run_dir / "stack.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        state = cls(
            run_dir=run_dir,
            ports=Ports.from_json(data["ports"]),
            dapr_version=data.get("dapr_version", ""),
            profile=data.get("profile", "embedded"),
            replicas=data.get("replicas", 1),
            observe=data.get("observe", False),
            mtls=data.get("mtls"),
            api_token=data["api_token"],
            app_token=data["app_token"],
            processes={n: ProcessRecord(**r) for n, r in data.get("processes", {}).items()},
        )
        if "postgres_password" in data:
            state.postgres_password = data["postgres_password"]
        return state
