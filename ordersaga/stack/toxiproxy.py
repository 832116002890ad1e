"""Fault proxies: the stack's network hops routed through Toxiproxy, so a test can partition,
reset or cut one hop while everything else runs.

A stack started with `proxied=True` (`Stack.up`) keeps the proxies' ports in `proxies.json` in
its run directory (its presence is what makes the stack proxied, across restarts) and runs one
`toxiproxy` process, started with the stores and brokers. The hops, one proxy each:

- `<sidecar>>placement`: each sidecar's connection to placement (`--placement-host-address`);
- `sidecars>scheduler`: every sidecar's to the scheduler. daprd learns the scheduler's address
  from the scheduler itself, so the scheduler broadcasts the proxy's
  (`--override-broadcast-host-port`): one hop for all sidecars;
- `<sidecar>>store` (production): each sidecar's connections to its PostgreSQL database (the
  DSN in its environment names the proxy);
- `<sidecar>>broker` (embedded: each sidecar's NATS URL) or `sidecars>broker` (production:
  Kafka hands out its advertised address, which is the proxy's, so every client, the tests'
  own included, goes through one hop);
- `peers><sidecar>`: calls from the other sidecars into this one (service invocation, actor
  calls). Its address is advertised by its port alone (`DAPR_HOST_IP` and
  `--dapr-internal-grpc-port` serve both), so the proxy takes the sidecar's address, 127.0.0.1,
  and the sidecar listens on the same port of another loopback address, `PEER_HOST`.

What a hop can suffer (`Toxiproxy`): a partition (every byte held, in order: a black hole, so
each side must notice by its own timeouts and keepalives), resets (every connection that carries
data is reset, new ones included), or a cut (the proxy closes its connections and refuses new
ones: what a dead host's port does). Healing closes the hop's connections, then opens it again.

Toxiproxy is built from the Go module proxy at a pinned version into the user cache, like the
Dapr runtime (ordersaga/stack/runtime.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ordersaga.stack.layout import HOST, StackState, free_port, port_free
from ordersaga.stack.runtime import GO_BUILD_ENV, RuntimeProvisionError, cache_root, check_go
from ordersaga.stack.specs import ProcessSpec, http_ok

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"
PROXIES_FILE = "proxies.json"
PEER_HOST = "127.0.0.2"  # where a proxied sidecar's internal API listens (loopback, like HOST)
PARTITION_MS = 3_600_000  # "latency" of a partition: an hour, i.e. until it heals


class ProxyError(RuntimeError):
    """Toxiproxy could not be built, started or told what to do."""


# ---- the binary ---------------------------------------------------------------------------------

def ensure_toxiproxy(log: Callable[[str], None] = print) -> Path:
    """The toxiproxy server binary, built once (`go install` at the pinned version)."""
    out_dir = cache_root() / "toxiproxy" / TOXIPROXY_VERSION
    binary = out_dir / "toxiproxy-server"
    if binary.is_file():
        return binary
    try:
        go = check_go(f"Toxiproxy {TOXIPROXY_VERSION} (the fault proxies)", "or run the stack without fault proxies.",
                      minimum=(1, 22, 0))
    except RuntimeProvisionError as error:
        raise ProxyError(str(error)) from None
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"Building Toxiproxy {TOXIPROXY_VERSION} from the Go module proxy (once, about a minute cold)")
    started = time.monotonic()
    env = dict(os.environ, **GO_BUILD_ENV, GOBIN=str(staging))
    env["GOFLAGS"] = "-buildvcs=false"  # `go install pkg@version` verifies against the checksum database
    built = subprocess.run([go, "install", "-trimpath", "-ldflags=-s -w",
                            f"{TOXIPROXY_MODULE}/cmd/server@{TOXIPROXY_VERSION}"],
                           env=env, capture_output=True, text=True)
    if built.returncode != 0:
        tail = "\n".join((built.stdout + built.stderr).splitlines()[-20:])
        raise ProxyError(f"building Toxiproxy {TOXIPROXY_VERSION} failed (exit {built.returncode}):\n{tail}")
    (staging / "server").rename(staging / "toxiproxy-server")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    log(f"  built in {time.monotonic() - started:.0f}s")
    return binary


# ---- which hops, on which ports -------------------------------------------------------------------

@dataclass(frozen=True)
class Hop:
    name: str
    listen: str  # host:port the proxy listens on
    upstream: str  # host:port it forwards to


def enabled(run_dir: Path) -> bool:
    return (run_dir / PROXIES_FILE).is_file()


def sidecars(state: StackState) -> list[tuple[str, str, object]]:
    """(sidecar process name, app id, its AppPorts) for every replica of the stack."""
    from ordersaga.stack.layout import APPS, replica_name

    return [(f"{replica_name(app_id, index)}-daprd", app_id, ports)
            for app_id in APPS for index, ports in enumerate(state.app_ports(app_id))]


def hops(state: StackState, plan: dict) -> list[Hop]:
    p = state.ports
    ports = plan["ports"]
    found = [Hop("sidecars>scheduler", f"{HOST}:{ports['sidecars>scheduler']}", f"{HOST}:{p.scheduler}")]
    if state.profile == "production":
        found.append(Hop("sidecars>broker", f"{HOST}:{ports['sidecars>broker']}", f"{HOST}:{p.kafka}"))
    for sidecar, _, app_ports in sidecars(state):
        found.append(Hop(f"{sidecar}>placement", f"{HOST}:{ports[f'{sidecar}>placement']}", f"{HOST}:{p.placement}"))
        if state.profile == "production":
            found.append(Hop(f"{sidecar}>store", f"{HOST}:{ports[f'{sidecar}>store']}", f"{HOST}:{p.postgres}"))
        else:
            found.append(Hop(f"{sidecar}>broker", f"{HOST}:{ports[f'{sidecar}>broker']}", f"{HOST}:{p.nats}"))
        internal = app_ports.dapr_internal_grpc
        found.append(Hop(f"peers>{sidecar}", f"{HOST}:{internal}", f"{PEER_HOST}:{internal}"))
    return found


def _wanted_ports(state: StackState) -> list[str]:
    names = ["api", "sidecars>scheduler"] + (["sidecars>broker"] if state.profile == "production" else [])
    for sidecar, _, _ in sidecars(state):
        names += [f"{sidecar}>placement", f"{sidecar}>{'store' if state.profile == 'production' else 'broker'}"]
    return names


def plan(state: StackState, create: bool = False) -> dict | None:
    """The proxies' ports (`proxies.json`), completed for replicas added since; None for a stack
    without fault proxies (unless `create`)."""
    path = state.run_dir / PROXIES_FILE
    if not path.is_file() and not create:
        return None
    data = json.loads(path.read_text()) if path.is_file() else {"ports": {}}
    stack_ports = state.ports.all_ports()
    taken = stack_ports | set(data["ports"].values())
    changed = False
    for name in _wanted_ports(state):
        if name not in data["ports"] or data["ports"][name] in stack_ports:  # new, or a replica's since
            data["ports"][name] = free_port(taken)
            changed = True
    if changed or not path.is_file():
        path.write_text(json.dumps(data, indent=2))
    return data


def reassign_busy(state: StackState, data: dict) -> None:
    """On a cold start, move the proxies off ports another program took meanwhile."""
    taken = state.ports.all_ports() | set(data["ports"].values())
    busy = [name for name, port in data["ports"].items() if not port_free(port)]
    for name in busy:
        data["ports"][name] = free_port(taken)
    if busy:
        (state.run_dir / PROXIES_FILE).write_text(json.dumps(data, indent=2))


# ---- routing the stack through them ---------------------------------------------------------------

def route(state: StackState, specs: list[ProcessSpec], binary: Path | None) -> list[ProcessSpec]:
    """The stack's process specs with every hop pointed at its proxy, and the toxiproxy process
    first. Each rewrite must find what it rewrites: a flag renamed elsewhere fails loudly here."""
    from ordersaga.stack import postgres
    from ordersaga.stack.profiles import DATABASES, KAFKA_BROKERS_ENV

    data = plan(state)
    ports = data["ports"]
    by_sidecar = {sidecar: app_id for sidecar, app_id, _ in sidecars(state)}
    for spec in specs:
        if spec.kind == "sidecar" and spec.name in by_sidecar:
            name = spec.name
            spec.argv = _swap(spec.argv, "--placement-host-address=", f"{HOST}:{ports[f'{name}>placement']}")
            spec.argv = _swap(spec.argv, "--scheduler-host-address=", f"{HOST}:{ports['sidecars>scheduler']}")
            spec.argv = _swap(spec.argv, "--dapr-internal-grpc-listen-address=", PEER_HOST)
            if state.profile == "production":
                database, variable = DATABASES[by_sidecar[name]]
                _require(spec.env, variable, name)
                spec.env[variable] = postgres.connection_string(HOST, ports[f"{name}>store"], state.postgres_password,
                                                                database)
                _require(spec.env, KAFKA_BROKERS_ENV, name)
                spec.env[KAFKA_BROKERS_ENV] = f"{HOST}:{ports['sidecars>broker']}"
            else:
                _require(spec.env, "ORDERSAGA_NATS_URL", name)
                spec.env["ORDERSAGA_NATS_URL"] = f"nats://{HOST}:{ports[f'{name}>broker']}"
        elif spec.name == "scheduler":
            spec.argv = _swap(spec.argv, "--override-broadcast-host-port=", f"{HOST}:{ports['sidecars>scheduler']}")
        elif spec.name == "kafka":
            spec.before_start = _advertising(spec.before_start, state, ports["sidecars>broker"])
    return [_server_spec(state, data, binary)] + specs


def _swap(argv: list[str], flag: str, value: str) -> list[str]:
    matches = [i for i, arg in enumerate(argv) if arg.startswith(flag)]
    if len(matches) != 1:
        raise ProxyError(f"cannot route {flag[:-1]} through a proxy: {len(matches)} such flags in {argv[:2]}")
    return argv[:matches[0]] + [flag + value] + argv[matches[0] + 1:]


def _require(env: dict, variable: str, name: str) -> None:
    if variable not in env:
        raise ProxyError(f"cannot route {name}'s {variable} through a proxy: it has no such setting")


def _advertising(before_start, state: StackState, proxy_port: int):
    """Kafka's config as written, with its clients' listener advertised at the proxy."""
    def write() -> None:
        if before_start:
            before_start()
        config = state.run_dir / "data" / "kafka.properties"
        direct = f"PLAINTEXT://{HOST}:{state.ports.kafka}"
        lines = config.read_text().splitlines()
        index = [i for i, line in enumerate(lines) if line.startswith("advertised.listeners=")]
        if len(index) != 1 or direct not in lines[index[0]]:
            raise ProxyError(f"cannot advertise Kafka at its proxy: no single {direct} in advertised.listeners")
        lines[index[0]] = lines[index[0]].replace(direct, f"PLAINTEXT://{HOST}:{proxy_port}")
        config.write_text("\n".join(lines) + "\n")
    return write


def _server_spec(state: StackState, data: dict, binary: Path | None) -> ProcessSpec:
    config = state.run_dir / "data" / "toxiproxy.json"
    api = data["ports"]["api"]
    wanted = hops(state, data)

    def write_config() -> None:
        config.write_text(json.dumps([{"name": h.name, "listen": h.listen, "upstream": h.upstream, "enabled": True}
                                      for h in wanted], indent=2))

    def healthy() -> bool:
        if not http_ok(f"http://{HOST}:{api}/version"):
            return False
        have = set(Toxiproxy(api).proxies())
        missing = sorted({h.name for h in wanted} - have)
        if missing:  # a listen port taken: toxiproxy logs it and carries on without that proxy
            raise ProxyError(f"toxiproxy could not open the proxies {missing}")
        return True

    return ProcessSpec(
        name="toxiproxy",
        argv=[str(binary or ensure_toxiproxy()), "-host", HOST, "-port", str(api), "-config", str(config)],
        env={k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "APP_"))},
        ports=[api] + [int(h.listen.rsplit(":", 1)[1]) for h in wanted],
        healthy=healthy,
        kind="proxy",
        before_start=write_config,
    )


# ---- telling it what to do ------------------------------------------------------------------------

class Toxiproxy:
    """Toxiproxy's HTTP API: partition, reset, cut and heal a hop by name."""

    def __init__(self, api_port: int):
        self.base = f"http://{HOST}:{api_port}"

    @classmethod
    def of(cls, state: StackState) -> "Toxiproxy":
        data = plan(state)
        if data is None:
            raise ProxyError(f"the stack in {state.run_dir} runs without fault proxies")
        return cls(data["ports"]["api"])

    def _call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ProxyError(f"toxiproxy {method} {path}: {error.code} {error.read().decode()[:200]}") from None
        except OSError as error:
            raise ProxyError(f"toxiproxy {method} {path}: {error}") from None
        return json.loads(text) if text.strip() else None

    def proxies(self) -> dict[str, dict]:
        return self._call("GET", "/proxies")

    def ensure(self, wanted: list[Hop]) -> None:
        """Create the proxies of `wanted` that the running server does not have yet."""
        have = set(self.proxies())
        for hop in wanted:
            if hop.name not in have:
                self._call("POST", "/proxies", {"name": hop.name, "listen": hop.listen, "upstream": hop.upstream,
                                                "enabled": True})

    def partition(self, hop: str) -> None:
        """Hold every byte both ways until `heal`: nothing gets through."""
        for stream in ("upstream", "downstream"):
            self._toxic(hop, f"partition-{stream}", "latency", stream, {"latency": PARTITION_MS, "jitter": 0})

    def reset(self, hop: str) -> None:
        """Reset (TCP RST) every connection that carries data, new ones too, until `heal`."""
        for stream in ("upstream", "downstream"):
            self._toxic(hop, f"reset-{stream}", "reset_peer", stream, {"timeout": 0})

    def cut(self, hop: str) -> None:
        """Close the hop's connections and refuse new ones until `heal`."""
        self._call("POST", f"/proxies/{hop}", {"enabled": False})

    def heal(self, hop: str) -> None:
        """End what the hop suffers: the proxy is deleted (its connections close, as a partition
        that outlasts TCP's patience leaves them: both sides connect again) and made anew, on the
        same port, without toxics. Not by removing the toxics: removing one from a connection
        whose writer is stuck behind a peer that does not read hangs Toxiproxy's API for good
        (upstream issues #210, #412, #558; it did here, on the scheduler's hop)."""
        proxy = self._call("GET", f"/proxies/{hop}")
        self._call("DELETE", f"/proxies/{hop}")
        self._call("POST", "/proxies", {"name": hop, "listen": proxy["listen"], "upstream": proxy["upstream"],
                                        "enabled": True})

    def heal_all(self) -> None:
        for hop, proxy in self.proxies().items():
            if proxy.get("toxics") or not proxy.get("enabled", True):
                self.heal(hop)

    def _toxic(self, hop: str, name: str, kind: str, stream: str, attributes: dict) -> None:
        self._call("POST", f"/proxies/{hop}/toxics",
                   {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes})
