"""A single-node Kubernetes from upstream sources, the way hack/local-up-cluster.sh assembles one.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as processes on the host;
containerd (Debian's, with runc) runs the pods, the kubelet drives it, kube-proxy programs the
Services into iptables, CoreDNS runs as a pod. Pods live on a bridge of their own with a private
/24 (CNI's bridge and host-local plugins); the node's address is that bridge's gateway, which is
where the apiserver and kubelet listen (pods must reach the apiserver) and where the host's
PostgreSQL and Kafka listen for the pods. Everything else listens on 127.0.0.1.

Everything the cluster writes is under its run directory (`.ordersaga-k8s/` in the checkout,
ORDERSAGA_K8S_HOME overrides): certificates, etcd's data, containerd's root and state, the
kubelet's root (volumes), pod logs, process logs and `cluster.json`, which records pids, ports
and what the node changed on the host (bridge, sysctls). `down` stops it all and undoes those
changes: no process, mount, network device or cgroup of the cluster is left.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import ssl
import string
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ordersaga.cluster import pki
from ordersaga.cluster.prereqs import CNI_DIR
from ordersaga.stack import processes
from ordersaga.stack.layout import free_port
from ordersaga.stack.processes import ProcessRecord
from ordersaga.stack.runtime import project_root

NODE_NAME = "ordersaga-node"
CLUSTER_DOMAIN = "cluster.local"
NETWORK_NAME = "ordersaga-k8s"
CGROUP_ROOT = "ordersaga-k8s"
ADDONS = Path("deploy") / "cluster" / "addons"
# The second octet of the cluster's 10.x.0.0/16: pods in 10.x.0.0/24, Services in 10.x.128.0/24.
_NET_CANDIDATES = range(213, 250)
_STOP_ORDER = ("kube-controller-manager", "kube-scheduler", "kubelet")
_STOP_AFTER_SWEEP = ("containerd", "kube-proxy", "kube-apiserver", "etcd")
_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
_UNIX_PATH_MAX = 107


class ClusterError(RuntimeError):
    """A component of the cluster failed; the message names it and ends with its log's last lines."""


def run_dir_from_env() -> Path:
    home = os.environ.get("ORDERSAGA_K8S_HOME")
    return Path(home).resolve() if home else project_root() / ".ordersaga-k8s"


@dataclass
class Network:
    octet: int
    bridge: str

    @property
    def node_ip(self) -> str:
        return f"10.{self.octet}.0.1"

    @property
    def pod_cidr(self) -> str:
        return f"10.{self.octet}.0.0/24"

    @property
    def service_cidr(self) -> str:
        return f"10.{self.octet}.128.0/24"

    @property
    def api_service_ip(self) -> str:
        return f"10.{self.octet}.128.1"

    @property
    def dns_ip(self) -> str:
        return f"10.{self.octet}.128.10"


@dataclass
class ClusterState:
    run_dir: Path
    network: Network
    ports: dict[str, int]
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    # What the node changed on the host, undone by `down`.
    sysctls_before: dict[str, str] = field(default_factory=dict)
    bridge_created: bool = False
    ready_seconds: float = 0.0
    # Settings of the installs on top (ordersaga/cluster/install.py): tokens, passwords, ports.
    install: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run_dir / "cluster.json"

    def save(self) -> None:
        data = {"network": asdict(self.network), "ports": self.ports,
                "processes": {n: r.to_json() for n, r in self.processes.items()},
                "sysctls_before": self.sysctls_before, "bridge_created": self.bridge_created,
                "ready_seconds": self.ready_seconds, "install": self.install}
        tmp = self.path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(data, indent=2))
        tmp.replace(self.path)

    @classmethod
    def load(cls, run_dir: Path) -> "ClusterState | None":
        path = run_dir / "cluster.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(run_dir=run_dir, network=Network(**data["network"]), ports=data["ports"],
                   processes={n: ProcessRecord(**r) for n, r in data.get("processes", {}).items()},
                   sysctls_before=data.get("sysctls_before", {}), bridge_created=data.get("bridge_created", False),
                   ready_seconds=data.get("ready_seconds", 0.0), install=data.get("install", {}))

    # ---- paths ------------------------------------------------------------------------------------

    @property
    def pki(self) -> Path:
        return self.run_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.run_dir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.run_dir / "pod-logs"

    @property
    def volumes(self) -> Path:
        return self.run_dir / "volumes"

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    @property
    def api_server(self) -> str:
        return f"https://{self.network.node_ip}:{self.ports['apiserver']}"


# ---- choosing addresses -----------------------------------------------------------------------------

def _used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    out += subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used = []
    for token in out.split():
        if "/" in token and token[0].isdigit():
            try:
                used.append(ipaddress.ip_network(token, strict=False))
            except ValueError:
                pass
    return used


def _bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def pick_network() -> Network:
    """A 10.x.0.0/16 no interface or route of this machine overlaps, and a bridge name that is free."""
    used = _used_networks()
    for octet in _NET_CANDIDATES:
        block = ipaddress.ip_network(f"10.{octet}.0.0/16")
        bridge = f"osaga{octet}"
        if not any(block.overlaps(net) for net in used if net.prefixlen > 0) and not _bridge_exists(bridge):
            return Network(octet=octet, bridge=bridge)
    raise ClusterError("no free 10.x.0.0/16 for the cluster's pods and Services (10.213 to 10.249 are all in use)")


_PORT_NAMES = ("etcd_client", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kubelet",
               "kubelet_healthz", "proxy_healthz", "proxy_metrics")


def pick_ports() -> dict[str, int]:
    taken: set[int] = set()
    return {name: free_port(taken) for name in _PORT_NAMES}


# ---- the host's side: bridge, sysctls, cgroups --------------------------------------------------------

def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"{what}: `{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")


def setup_host(state: ClusterState) -> None:
    net = state.network
    if not _bridge_exists(net.bridge):
        _run(["ip", "link", "add", net.bridge, "type", "bridge"], "creating the pods' bridge")
        state.bridge_created = True
        state.save()
        _run(["ip", "addr", "add", f"{net.node_ip}/24", "dev", net.bridge], "addressing the pods' bridge")
        _run(["ip", "link", "set", net.bridge, "up"], "bringing the pods' bridge up")
    for name, value in _SYSCTLS.items():
        path = _sysctl_path(name)
        current = path.read_text().strip()
        if current != value:
            state.sysctls_before.setdefault(name, current)
            path.write_text(value)
    state.save()
    for hierarchy in _cgroup_hierarchies():
        target = hierarchy / CGROUP_ROOT
        target.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (target / knob).read_text().strip():
                    (target / knob).write_text((hierarchy / knob).read_text())


def _cgroup_hierarchies() -> list[Path]:
    """The v1 hierarchies (cpu, memory, ..., name=systemd) and the v2 one, when mounted."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] in ("cgroup", "cgroup2") and fields[1].startswith("/sys/fs/cgroup"):
            found.append(Path(fields[1]))
    return found


def _remove_cgroups() -> list[str]:
    """rmdir our cgroup trees, deepest first (an empty cgroup is removed with rmdir)."""
    left = []
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            root.rmdir()
        except OSError as error:
            left.append(f"{root} ({error.strerror})")
    return left


def restore_host(state: ClusterState) -> list[str]:
    problems = []
    if state.bridge_created and _bridge_exists(state.network.bridge):
        proc = subprocess.run(["ip", "link", "delete", state.network.bridge], capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"bridge {state.network.bridge}: {proc.stderr.strip()}")
    for name, value in state.sysctls_before.items():
        try:
            _sysctl_path(name).write_text(value)
        except OSError as error:
            problems.append(f"sysctl {name}: {error}")
    problems += [f"cgroup {c}" for c in _remove_cgroups()]
    return problems


# ---- configuration files ---------------------------------------------------------------------------

def write_pki(state: ClusterState) -> None:
    net, p = state.network, state.pki
    pki.make_ca(p)
    pki.service_account_keys(p)
    api_names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost")
    for who in (
        pki.Identity("apiserver", "kube-apiserver", dns=api_names, ips=("127.0.0.1", net.node_ip, net.api_service_ip),
                     server=True, client=False),
        pki.Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        pki.Identity("admin", "ordersaga-admin", "system:masters"),
        pki.Identity("controller-manager", "system:kube-controller-manager"),
        pki.Identity("scheduler", "system:kube-scheduler"),
        pki.Identity("kube-proxy", "system:kube-proxy"),
        pki.Identity("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
        pki.Identity("kubelet-serving", NODE_NAME, dns=(NODE_NAME, "localhost"), ips=(net.node_ip, "127.0.0.1"),
                     server=True, client=False),
    ):
        pki.issue(p, who)
    for name, user in (("admin", "ordersaga-admin"), ("controller-manager", "system:kube-controller-manager"),
                       ("scheduler", "system:kube-scheduler"), ("kube-proxy", "system:kube-proxy"),
                       ("kubelet", f"system:node:{NODE_NAME}")):
        target = state.kubeconfig if name == "admin" else state.run_dir / "kubeconfigs" / f"{name}.kubeconfig"
        target.parent.mkdir(parents=True, exist_ok=True)
        pki.kubeconfig(target, p, state.api_server, user, name)


def _kubeconfig_of(state: ClusterState, name: str) -> str:
    return str(state.run_dir / "kubeconfigs" / f"{name}.kubeconfig")


def write_configs(state: ClusterState, pause_image: str) -> None:
    net, run = state.network, state.run_dir
    (run / "containerd").mkdir(parents=True, exist_ok=True)
    (run / "containerd" / "config.toml").write_text(f"""# containerd of ordersaga's local cluster node.
version = 2
root = "{run / 'containerd' / 'root'}"
state = "{run / 'containerd' / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{state.containerd_socket}"

[ttrpc]
  address = "{state.containerd_socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{run / 'containerd' / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  # Every image is imported from archives built here: no registry is ever asked.
  sandbox_image = "{pause_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  # No CAP_SYS_RESOURCE in some sandboxes (CI, containers): no oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroups v1 here: the kubelet drives cgroupfs, and so must runc.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{run / 'cni' / 'net.d'}"
""")
    (run / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (run / "cni" / "net.d" / "10-ordersaga.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {"type": "bridge", "bridge": net.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": net.pod_cidr, "gateway": net.node_ip}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(run / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2))
    state.kubelet_root.mkdir(parents=True, exist_ok=True)
    state.pod_logs.mkdir(parents=True, exist_ok=True)
    (run / "kubelet.yaml").write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {net.node_ip}
port: {state.ports['kubelet']}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {state.ports['kubelet_healthz']}
tlsCertFile: {state.pki / 'kubelet-serving.crt'}
tlsPrivateKeyFile: {state.pki / 'kubelet-serving.key'}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {state.pki / 'ca.crt'}}}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://{state.containerd_socket}
# cgroups v1 (with a v2 `unified` mount) on this kernel: cgroupfs, and no refusal of v1.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: /{CGROUP_ROOT}
failSwapOn: false
clusterDomain: {CLUSTER_DOMAIN}
clusterDNS: [{net.dns_ip}]
resolvConf: /etc/resolv.conf
podLogsDir: {state.pod_logs}
# The images are imported, never pulled: never collect them (they could not come back).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The machine is shared: evict only when it is really short of memory or disk.
evictionHard: {{memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}}
serializeImagePulls: false
maxPods: 110
""")
    (run / "kube-proxy.yaml").write_text(f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {_kubeconfig_of(state, 'kube-proxy')}
hostnameOverride: {NODE_NAME}
mode: iptables
clusterCIDR: {net.pod_cidr}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:{state.ports['proxy_healthz']}
metricsBindAddress: 127.0.0.1:{state.ports['proxy_metrics']}
nodePortAddresses: ["{net.node_ip}/32"]
iptables:
  localhostNodePorts: false
# 0: leave the host's conntrack settings as they are (the machine is shared).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
""")


# ---- the processes ----------------------------------------------------------------------------------

def process_argv(state: ClusterState, programs: dict[str, Path]) -> dict[str, list[str]]:
    net, ports, p = state.network, state.ports, state.pki
    etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"
    peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
    return {
        "etcd": [str(programs["etcd"]), "--name", "node", "--data-dir", str(state.run_dir / "etcd"),
                 "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                 "--initial-cluster", f"node={peer_url}", "--log-level", "warn"],
        "kube-apiserver": [
            str(programs["kube-apiserver"]), f"--etcd-servers={etcd_url}",
            f"--bind-address={net.node_ip}", f"--advertise-address={net.node_ip}",
            f"--secure-port={ports['apiserver']}", f"--service-cluster-ip-range={net.service_cidr}",
            f"--client-ca-file={p / 'ca.crt'}", f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--event-ttl=1h",
        ],
        "kube-controller-manager": [
            str(programs["kube-controller-manager"]), f"--kubeconfig={_kubeconfig_of(state, 'controller-manager')}",
            f"--authentication-kubeconfig={_kubeconfig_of(state, 'controller-manager')}",
            f"--authorization-kubeconfig={_kubeconfig_of(state, 'controller-manager')}",
            "--bind-address=127.0.0.1", f"--secure-port={ports['controller_manager']}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--allocate-node-cidrs=false",
            f"--service-cluster-ip-range={net.service_cidr}", "--profiling=false",
        ],
        "kube-scheduler": [
            str(programs["kube-scheduler"]), f"--kubeconfig={_kubeconfig_of(state, 'scheduler')}",
            f"--authentication-kubeconfig={_kubeconfig_of(state, 'scheduler')}",
            f"--authorization-kubeconfig={_kubeconfig_of(state, 'scheduler')}",
            "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}", "--leader-elect=false",
            "--profiling=false",
        ],
        "containerd": ["containerd", "--config", str(state.run_dir / "containerd" / "config.toml")],
        "kubelet": [
            str(programs["kubelet"]), f"--config={state.run_dir / 'kubelet.yaml'}",
            f"--kubeconfig={_kubeconfig_of(state, 'kubelet')}", f"--root-dir={state.kubelet_root}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={net.node_ip}",
        ],
        "kube-proxy": [str(programs["kube-proxy"]), f"--config={state.run_dir / 'kube-proxy.yaml'}"],
    }


_START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet",
                "kube-proxy")


def _insecure_get(url: str, cert: tuple[Path, Path] | None = None, ca: Path | None = None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    if cert:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(url, timeout=5, context=context if url.startswith("https") else None) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as error:
        return 0, str(error)


def health_check(state: ClusterState, name: str, ctr: list[str]) -> bool:
    ports, p = state.ports, state.pki
    if name == "etcd":
        code, body = _insecure_get(f"http://127.0.0.1:{ports['etcd_client']}/health")
        return code == 200 and '"true"' in body
    if name == "kube-apiserver":
        code, _ = _insecure_get(f"{state.api_server}/readyz", cert=(p / "admin.crt", p / "admin.key"), ca=p / "ca.crt")
        return code == 200
    if name in ("kube-controller-manager", "kube-scheduler"):
        port = ports["controller_manager" if name == "kube-controller-manager" else "scheduler"]
        return _insecure_get(f"https://127.0.0.1:{port}/healthz")[0] == 200
    if name == "containerd":
        return subprocess.run([*ctr, "version"], capture_output=True).returncode == 0
    if name == "kubelet":
        return _insecure_get(f"http://127.0.0.1:{ports['kubelet_healthz']}/healthz")[0] == 200
    if name == "kube-proxy":
        return _insecure_get(f"http://127.0.0.1:{ports['proxy_healthz']}/healthz")[0] == 200
    raise KeyError(name)


class Node:
    """The cluster in `run_dir`: `up` (build-free: the programs and images are given) and `down`."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print):
        self.run_dir = run_dir.resolve()
        self.log = log

    def state(self) -> ClusterState | None:
        return ClusterState.load(self.run_dir)

    def ctr(self, state: ClusterState) -> list[str]:
        return ["ctr", "--address", str(state.containerd_socket), "--namespace", "k8s.io"]

    def kubectl_argv(self, state: ClusterState, kubectl: str) -> list[str]:
        return [kubectl, f"--kubeconfig={state.kubeconfig}"]

    # ---- up ----------------------------------------------------------------------------------------

    def new_state(self) -> ClusterState:
        socket_path = self.run_dir / "containerd" / "containerd.sock.ttrpc"
        if len(str(socket_path)) > _UNIX_PATH_MAX:
            raise ClusterError(f"the run directory {self.run_dir} is too deep for containerd's sockets "
                               f"({len(str(socket_path))} characters, at most {_UNIX_PATH_MAX}): set "
                               "ORDERSAGA_K8S_HOME to a shorter path")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        state = ClusterState(run_dir=self.run_dir, network=pick_network(), ports=pick_ports())
        state.save()
        return state

    def start(self, state: ClusterState, programs: dict[str, Path], images_import: Callable[[list[str]], None],
              pause_image: str, kubectl: str, timeout: float = 300.0) -> None:
        """Start every process in order, each healthy before the next; images are imported once
        containerd runs. On failure: the component's name and log, and everything is stopped."""
        started = time.monotonic()
        setup_host(state)
        write_pki(state)
        write_configs(state, pause_image)
        argv = process_argv(state, programs)
        env = dict(os.environ, PATH=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        for name in _START_ORDER:
            record, child = processes.spawn(name, argv[name], env=env, cwd=self.run_dir, log_path=state.log_path(name),
                                            tie_to_parent=False, kind="control")
            state.processes[name] = record
            state.save()
            self._wait(state, name, child, timeout)
            self.log(f"  {name:<24} healthy ({time.monotonic() - started:.0f}s)")
            if name == "containerd":
                images_import(self.ctr(state))
        self._wait_node_ready(state, kubectl, timeout)
        self.apply_addons(state, kubectl)
        self._wait_rollout(state, kubectl, "kube-system", "deployment/coredns", timeout)
        state.ready_seconds = round(time.monotonic() - started, 1)
        state.save()

    def _wait(self, state: ClusterState, name: str, child: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise ClusterError(f"{name} exited (code {child.returncode}) while starting; last lines of "
                                   f"{state.log_path(name)}:\n{processes.log_tail(state.log_path(name), 25)}")
            if health_check(state, name, self.ctr(state)):
                return
            time.sleep(0.5)
        raise ClusterError(f"{name} did not become healthy within {timeout:.0f}s; last lines of "
                           f"{state.log_path(name)}:\n{processes.log_tail(state.log_path(name), 25)}")

    def kubectl(self, state: ClusterState, kubectl: str, *args: str, input: str | None = None,
                check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.kubectl_argv(state, kubectl), *args], input=input, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        return proc

    def _wait_node_ready(self, state: ClusterState, kubectl: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.kubectl(state, kubectl, "get", "node", NODE_NAME, "-o",
                                "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
            if proc.stdout.strip() == "True":
                return
            if not processes.is_running(state.processes["kubelet"]):
                break
            time.sleep(1)
        raise ClusterError(f"the node did not become Ready within {timeout:.0f}s; last lines of "
                           f"{state.log_path('kubelet')}:\n{processes.log_tail(state.log_path('kubelet'), 25)}")

    def _wait_rollout(self, state: ClusterState, kubectl: str, namespace: str, what: str, timeout: float) -> None:
        proc = self.kubectl(state, kubectl, "-n", namespace, "rollout", "status", what, f"--timeout={int(timeout)}s",
                            check=False, timeout=timeout + 30)
        if proc.returncode != 0:
            pods = self.kubectl(state, kubectl, "-n", namespace, "get", "pods", "-o", "wide", check=False).stdout
            events = self.kubectl(state, kubectl, "-n", namespace, "get", "events", "--sort-by=.lastTimestamp",
                                  check=False).stdout
            raise ClusterError(f"{what} in {namespace} did not become ready: {proc.stderr.strip()}\n{pods}\n"
                               f"{chr(10).join(events.splitlines()[-15:])}")

    def apply_addons(self, state: ClusterState, kubectl: str) -> None:
        from ordersaga.cluster.images import COREDNS_IMAGE

        forward = ("forward . /etc/resolv.conf" if _resolver_reachable()
                   else "# no forward: the host's resolver is on loopback")
        values = {"cluster_domain": CLUSTER_DOMAIN, "coredns_image": COREDNS_IMAGE, "dns_ip": state.network.dns_ip,
                  "forward": forward}
        root = project_root()
        coredns = string.Template((root / ADDONS / "coredns.yaml").read_text()).substitute(values)
        storage = (root / ADDONS / "storage.yaml").read_text() + self._volumes(state)
        for manifest in (storage, coredns):
            self.kubectl(state, kubectl, "apply", "-f", "-", input=manifest)

    def _volumes(self, state: ClusterState, count: int = 4) -> str:
        docs = []
        for index in range(1, count + 1):
            path = state.volumes / f"pv{index}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # the claimant's user is not known ahead (Dapr's scheduler runs as 65532)
            docs.append(f"""---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv{index}
spec:
  storageClassName: local-hostpath
  capacity: {{storage: 16Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {{path: "{path}", type: DirectoryOrCreate}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - {{key: kubernetes.io/hostname, operator: In, values: [{NODE_NAME}]}}
""")
        return "\n" + "".join(docs)

    # ---- down --------------------------------------------------------------------------------------

    def down(self, programs: dict[str, Path] | None = None, keep_logs: bool = True) -> list[str]:
        """Stop everything and undo the node's changes to the host; returns what could not be undone."""
        state = self.state()
        if state is None:
            return []
        problems: list[str] = []
        extra = [n for n in state.processes if n not in _START_ORDER]  # the installs' PostgreSQL, Kafka, forwards
        for name in [*extra, *_STOP_ORDER]:
            self._stop(state, name)
        if "containerd" in state.processes and processes.is_running(state.processes["containerd"]):
            sweep = programs.get("cri-sweep") if programs else None
            if sweep:
                proc = subprocess.run([str(sweep), f"--endpoint=unix://{state.containerd_socket}"],
                                      capture_output=True, text=True, timeout=180)
                if proc.returncode != 0:
                    problems.append(f"cri-sweep: {(proc.stderr or proc.stdout).strip()[-500:]}")
            else:
                problems.append("cri-sweep was not built: the pods' sandboxes were not removed through the CRI")
        for name in _STOP_AFTER_SWEEP:
            self._stop(state, name, timeout=30)
        if programs and "kube-proxy" in programs:
            subprocess.run([str(programs["kube-proxy"]), "--cleanup"], capture_output=True, text=True)
        problems += _delete_kube_chains({r.pid for r in state.processes.values()})
        problems += _unmount_under(self.run_dir)
        problems += _remove_leftover_netns(state)
        problems += restore_host(state)
        _remove_container_log_links(state.pod_logs)
        _remove_cni_cache(NETWORK_NAME)
        state.processes.clear()
        state.save()
        outside = state.install.get("postgres_data")
        if not problems and outside and not Path(outside).resolve().is_relative_to(self.run_dir):
            # PostgreSQL's data went where its user can reach it (postgres.cluster_dir): gone too.
            shutil.rmtree(Path(outside).parent, ignore_errors=True)
        if keep_logs and state.pod_logs.is_dir():
            # The pods' logs outlive the cluster for a post-mortem, beside the processes' logs.
            kept = self.run_dir / "logs" / "pods"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.move(str(state.pod_logs), str(kept))
        if not problems:
            for child in self.run_dir.iterdir():
                if keep_logs and child.name == "logs":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        return problems

    def _stop(self, state: ClusterState, name: str, timeout: float = 20.0) -> None:
        record = state.processes.get(name)
        if record and processes.is_running(record):
            processes.stop(record, timeout=timeout)


def _resolver_reachable() -> bool:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return False
    servers = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver") and len(line.split()) > 1]
    return any(not ipaddress.ip_address(s).is_loopback for s in servers if _is_ip(s))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(mount_point)
    return found


def _unmount_under(path: Path) -> list[str]:
    """Unmount whatever is still mounted under the run directory (the kubelet's volumes when it
    was stopped before its pods), deepest first; returns what stays mounted."""
    for _ in range(3):
        points = sorted(set(mounts_under(path)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            return []
        for point in points:
            subprocess.run(["umount", point], capture_output=True)
    left = mounts_under(path)
    for point in sorted(set(left), key=lambda p: p.count("/"), reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    left = mounts_under(path)
    return [f"mount {p}" for p in left]


def _remove_leftover_netns(state: ClusterState) -> list[str]:
    """Network namespaces the CNI made for our pods and nobody removed (containerd names them
    cni-<uuid> under /var/run/netns); ours hold an interface in our pod network."""
    problems = []
    netns_dir = Path("/var/run/netns")
    if not netns_dir.is_dir():
        return []
    net = ipaddress.ip_network(state.network.pod_cidr)
    for entry in netns_dir.glob("cni-*"):
        out = subprocess.run(["ip", "-n", entry.name, "-4", "-o", "addr", "show"], capture_output=True,
                             text=True).stdout
        addresses = [t.split("/")[0] for t in out.split() if "/" in t and t[0].isdigit()]
        if any(_is_ip(a) and ipaddress.ip_address(a) in net for a in addresses):
            proc = subprocess.run(["ip", "netns", "delete", entry.name], capture_output=True, text=True)
            if proc.returncode != 0:
                problems.append(f"netns {entry.name}: {proc.stderr.strip()}")
    return problems


def _delete_kube_chains(ours: set[int] = frozenset()) -> list[str]:
    """What kube-proxy and the kubelet leave in iptables after `kube-proxy --cleanup`: their KUBE-*
    chains (canaries, KUBE-FIREWALL, KUBE-MARK-MASQ) and the jumps to them from the built-in
    chains. Skipped, and said, when another kube-proxy runs on this machine: they would be its."""
    if other_kube_proxy(ours):
        return ["iptables: another kube-proxy runs on this machine, so its KUBE-* chains were left alone"]
    problems = []
    for binary in ("iptables", "ip6tables"):
        if not shutil.which(binary):
            continue
        for table in ("filter", "nat", "mangle"):
            dump = subprocess.run([f"{binary}-save", "-t", table], capture_output=True, text=True).stdout
            chains = [line[1:].split()[0] for line in dump.splitlines() if line.startswith(":KUBE-")]
            for line in dump.splitlines():
                parts = shlex.split(line)
                if len(parts) > 3 and parts[0] == "-A" and not parts[1].startswith("KUBE-") and \
                        any(p.startswith("KUBE-") for p in parts[2:]):
                    subprocess.run([binary, "-w", "-t", table, "-D", *parts[1:]], capture_output=True)
            for chain in chains:
                subprocess.run([binary, "-w", "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                proc = subprocess.run([binary, "-w", "-t", table, "-X", chain], capture_output=True, text=True)
                if proc.returncode != 0:
                    problems.append(f"{binary} -t {table} chain {chain}: {proc.stderr.strip()}")
    return problems


def other_kube_proxy(ours: set[int] = frozenset()) -> bool:
    """A kube-proxy runs on this machine that is not one of `ours` (pids)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in ours:
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if argv0.endswith(b"/kube-proxy") or argv0 == b"kube-proxy":
                return True
    return False


def _remove_container_log_links(pod_logs: Path) -> None:
    """The kubelet links every container's log into /var/log/containers; ours point into the run directory."""
    folder = Path("/var/log/containers")
    if not folder.is_dir():
        return
    for link in folder.iterdir():
        try:
            if link.is_symlink() and os.readlink(link).startswith(str(pod_logs)):
                link.unlink()
        except OSError:
            pass


def _remove_cni_cache(network: str) -> None:
    """libcni's cache of results (/var/lib/cni/results) for our network's attachments."""
    for entry in Path("/var/lib/cni/results").glob(f"{network}-*"):
        entry.unlink(missing_ok=True)

