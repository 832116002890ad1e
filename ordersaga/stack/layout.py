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


@dataclass
class Ports:
    nats: int
    nats_monitor: int
    placement: int
    placement_healthz: int
    placement_raft: int
    scheduler: int
    scheduler_healthz: int
    scheduler_etcd_client: int
    scheduler_etcd_peer: int
    apps: dict[str, AppPorts] = field(default_factory=dict)

    @classmethod
    def allocate(cls) -> "Ports":
        taken: set[int] = set()

        def pick() -> int:
            return free_port(taken)

        infra = {name: pick() for name in cls.__dataclass_fields__ if name != "apps"}
        apps = {app: AppPorts(pick(), pick(), pick(), pick()) for app in APPS}
        return cls(**infra, apps=apps)

    @classmethod
    def from_json(cls, data: dict) -> "Ports":
        apps = {app: AppPorts(**ports) for app, ports in data.pop("apps").items()}
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


@dataclass
class StackState:
    """The contents of `stack.json`: what `status` reports and `down` stops."""

    run_dir: Path
    ports: Ports
    dapr_version: str = ""
    # Sidecars refuse API calls without `api_token`; apps refuse calls without `app_token`
    # (daprd adds it to what it forwards). Generated once per run directory.
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    app_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: dict[str, ProcessRecord] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run_dir / "stack.json"

    def save(self) -> None:
        data = {
            "ports": asdict(self.ports),
            "dapr_version": self.dapr_version,
            "api_token": self.api_token,
            "app_token": self.app_token,
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
        return cls(
            run_dir=run_dir,
            ports=Ports.from_json(data["ports"]),
            dapr_version=data.get("dapr_version", ""),
            api_token=data["api_token"],
            app_token=data["app_token"],
            processes={n: ProcessRecord(**r) for n, r in data.get("processes", {}).items()},
        )
