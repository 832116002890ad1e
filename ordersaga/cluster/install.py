"""Installing on the local cluster what "Deploying to Kubernetes" (docs/deploying.md) tells a user to.

The steps run the README's own commands (`helm upgrade --install ...`, `kubectl create secret ...`),
with the values of this cluster; `readme_commands()` renders them and a unit test checks the
README shows the same, so the two cannot drift apart:
1. Dapr's control plane, from Dapr's own Helm chart in the dapr v1.18.3 module (not a copy), its
   images pointed at the ones built here (`global.registry`, `global.tag`, pull policy Never).
2. and 3. PostgreSQL and Kafka, brought by the user: here they run on the host (the local
   production profile's servers, ordersaga/stack/postgres.py and kafka.py), listening on the
   node's address, which the pods reach; the topics are created before anything subscribes.
4. The image: built and imported by `k8s-up` (ordersaga/cluster/images.py) instead of pushed.
5. The Secret with the connection settings and the two token Secrets.
6. The ordersaga chart.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from order_service.topics import ALL_TOPICS
from ordersaga.cluster.images import APP_REPOSITORY, DAPR_REGISTRY, DAPR_TAG
from ordersaga.cluster.node import ClusterState, Node
from ordersaga.stack import kafka, postgres, processes
from ordersaga.stack.layout import free_port
from ordersaga.stack.profiles import DATABASES, KAFKA_BROKERS_ENV
from ordersaga.stack.runtime import project_root

NAMESPACE = "ordersaga"
RELEASE = "ordersaga"
DAPR_NAMESPACE = "dapr-system"
CHART = Path("deploy") / "helm" / "ordersaga"
CONNECTIONS_SECRET = "ordersaga-connections"
DAPR_TOKEN_SECRET = "ordersaga-dapr-api-token"
APP_TOKEN_SECRET = "ordersaga-app-api-token"
KAFKA_PARTITIONS = 4


def chart_app_version() -> str:
    text = (project_root() / CHART / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', text, re.M)
    return match.group(1) if match else "0.1.0"


APP_TAG = chart_app_version()


class InstallError(RuntimeError):
    """A step of the install failed; the message names it with what the cluster said."""


def dapr_chart() -> Path:
    """Dapr's own chart, in the Go module cache (the dapr v1.18.3 module the runtime build fetched)."""
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    chart = Path(gomodcache) / f"github.com/dapr/dapr@v{DAPR_TAG}" / "charts" / "dapr"
    if not (chart / "Chart.yaml").is_file():
        raise InstallError(f"Dapr's Helm chart is not in the Go module cache ({chart}): `make runtime` downloads "
                           "the dapr module (it builds daprd from it)")
    return chart


# ---- the README's commands, with this cluster's values ------------------------------------------------

def dapr_install_args(chart: str) -> list[str]:
    """Step 1 of the README for the local cluster: Dapr's chart from the module, one replica of
    each control-plane service (the node has two cores), images built here."""
    return ["upgrade", "--install", "dapr", chart, "--namespace", DAPR_NAMESPACE, "--create-namespace",
            "--set", f"global.registry={DAPR_REGISTRY}", "--set", f"global.tag={DAPR_TAG}",
            "--set", "global.imagePullPolicy=Never", "--wait", "--timeout", "15m"]


def secret_args(connections: dict[str, str]) -> list[list[str]]:
    create = [["create", "namespace", NAMESPACE]]
    literal = [f"--from-literal={key}={value}" for key, value in connections.items()]
    create.append(["-n", NAMESPACE, "create", "secret", "generic", CONNECTIONS_SECRET, *literal])
    for name in (DAPR_TOKEN_SECRET, APP_TOKEN_SECRET):
        create.append(["-n", NAMESPACE, "create", "secret", "generic", name,
                       f"--from-literal=token={secrets.token_hex(32)}"])
    return create


def chart_install_args(tag: str = APP_TAG, extra: tuple[str, ...] = ()) -> list[str]:
    return ["upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--set", f"image.repository={APP_REPOSITORY}", "--set", f"image.tag={tag}",
            "--set", f"daprApiTokenSecret={DAPR_TOKEN_SECRET}", "--set", f"appApiTokenSecret={APP_TOKEN_SECRET}",
            *extra, "--wait", "--timeout", "15m"]


def readme_commands() -> list[str]:
    """The install's commands as the README shows them for the local cluster."""
    return [
        "helm " + " ".join(dapr_install_args('"$(go env GOMODCACHE)/github.com/dapr/dapr@v1.18.3/charts/dapr"')[:-2]),
        "helm " + " ".join(chart_install_args()[:-2]),
    ]


# ---- the installer ----------------------------------------------------------------------------------

class Installer:
    def __init__(self, node: Node, state: ClusterState, programs: dict[str, Path], helm: Path,
                 log: Callable[[str], None] = print):
        self.node, self.state, self.programs, self.helm, self.log = node, state, programs, helm, log
        self.kubectl_path = str(programs["kubectl"])

    # -- tools --

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        return self.node.kubectl(self.state, self.kubectl_path, *args, input=input, check=check, timeout=timeout)

    def helm_run(self, what: str, *args: str, timeout: float = 1200) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.state.kubeconfig))
        proc = subprocess.run([str(self.helm), *args], capture_output=True, text=True, cwd=project_root(), env=env,
                              timeout=timeout)
        if proc.returncode != 0:
            said = (proc.stderr or proc.stdout).strip()[-2000:]
            raise InstallError(f"{what}: helm {' '.join(args[:3])} failed:\n{said}"
                               f"\n{self._pods_report()}")
        return proc.stdout

    def _pods_report(self) -> str:
        pods = self.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        events = self.kubectl("get", "events", "-A", "--sort-by=.lastTimestamp", check=False).stdout
        return f"pods:\n{pods}\nlast events:\n" + "\n".join(events.splitlines()[-20:])

    # -- steps --

    def install_all(self, extra: tuple[str, ...] = ()) -> None:
        started = time.monotonic()
        self.install_dapr()
        self.start_stores()
        self.create_secrets()
        self.install_chart(extra=extra)
        self.log(f"Installed Dapr, PostgreSQL, Kafka and ordersaga in {time.monotonic() - started:.0f}s")

    def install_dapr(self) -> None:
        self.log(f"1. Dapr {DAPR_TAG} from its own chart into {DAPR_NAMESPACE} "
                 f"(images {DAPR_REGISTRY}/*:{DAPR_TAG}) ...")
        started = time.monotonic()
        self.helm_run("installing Dapr", *dapr_install_args(str(dapr_chart())))
        self.log(f"   Dapr's control plane is ready ({time.monotonic() - started:.0f}s)")

    def start_stores(self) -> None:
        """2. and 3.: PostgreSQL and Kafka on the host, on the node's address."""
        install = self.state.install
        host = self.state.network.node_ip
        install.setdefault("postgres_password", secrets.token_urlsafe(24))
        install.setdefault("postgres_port", free_port(set()))
        install.setdefault("kafka_port", free_port({install["postgres_port"]}))
        install.setdefault("kafka_controller_port", free_port({install["postgres_port"], install["kafka_port"]}))
        self.state.save()
        self.log(f"2. PostgreSQL on {host}:{install['postgres_port']} (on the host, as a user brings their own) ...")
        self._start_postgres(host)
        self.log(f"3. Kafka on {host}:{install['kafka_port']}, topics with {KAFKA_PARTITIONS} partitions ...")
        self._start_kafka(host)

    def _running(self, name: str) -> bool:
        record = self.state.processes.get(name)
        return bool(record and processes.is_running(record))

    def _spawn(self, name: str, argv: list[str], ready: Callable[[], bool], user: str | None = None,
               stop_signal: int = signal.SIGTERM, timeout: float = 120) -> None:
        if self._running(name):
            return
        record, child = processes.spawn(name, argv, env=dict(os.environ), cwd=self.state.run_dir,
                                        log_path=self.state.log_path(name), tie_to_parent=False, kind="store",
                                        stop_signal=stop_signal, user=user)
        self.state.processes[name] = record
        self.state.save()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                break
            try:
                if ready():
                    return
            except postgres.PostgresRefused as error:
                raise InstallError(f"{name}: {error}") from None
            time.sleep(0.5)
        raise InstallError(f"{name} did not become ready; last lines of {record.log}:\n"
                           f"{processes.log_tail(record.log, 25)}")

    def _start_postgres(self, host: str) -> None:
        install = self.state.install
        server = postgres.ensure_postgres(self.log)
        password, port = install["postgres_password"], install["postgres_port"]
        data_dir = postgres.cluster_dir(server, self.state.run_dir / "postgres" / "data", password, self.log)
        install["postgres_data"] = str(data_dir)
        self.state.save()
        postgres.init_cluster(server, data_dir, password)
        # The pods connect from the pod network; initdb's pg_hba.conf admits loopback only.
        hba = data_dir / "pg_hba.conf"
        rule = f"host all {postgres.SUPERUSER} {self.state.network.pod_cidr} scram-sha-256"
        text = hba.read_text()
        if rule not in text:
            hba.write_text(text + f"\n# ordersaga's local cluster: the pods\n{rule}\n"
                                  f"host all {postgres.SUPERUSER} {host}/32 scram-sha-256\n")
        self._spawn("postgres", postgres.server_argv(server, data_dir, host, port),
                    lambda: postgres.is_ready(host, port, password), user=server.run_as, stop_signal=signal.SIGINT)
        postgres.ensure_databases(host, port, password, [db for db, _ in DATABASES.values()])

    def _start_kafka(self, host: str) -> None:
        install = self.state.install
        dist = kafka.ensure_kafka(self.log)
        conf, logs = self.state.run_dir / "kafka" / "server.properties", self.state.run_dir / "kafka" / "data"
        conf.parent.mkdir(parents=True, exist_ok=True)
        kafka.write_config(conf, host=host, port=install["kafka_port"],
                           controller_port=install["kafka_controller_port"], log_dir=logs)
        kafka.format_storage(dist, conf, logs)
        bootstrap = f"{host}:{install['kafka_port']}"
        self._spawn("kafka", kafka.server_argv(dist, conf), lambda: kafka.is_ready(bootstrap))
        kafka.ensure_topics(bootstrap, list(ALL_TOPICS), KAFKA_PARTITIONS)

    def connections(self) -> dict[str, str]:
        install, host = self.state.install, self.state.network.node_ip
        values = {variable: postgres.connection_string(host, install["postgres_port"], install["postgres_password"], db)
                  for db, variable in DATABASES.values()}
        values[KAFKA_BROKERS_ENV] = f"{host}:{install['kafka_port']}"
        return values

    def create_secrets(self) -> None:
        self.log(f"5. The namespace {NAMESPACE}, the Secret {CONNECTIONS_SECRET} and the two token Secrets ...")
        exists = self.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0
        for args in secret_args(self.connections()):
            if args[:2] == ["create", "namespace"]:
                if exists:
                    continue
            elif self.kubectl("-n", NAMESPACE, "get", "secret", args[5], check=False).returncode == 0:
                continue  # kept: the tokens and settings of an earlier install stay valid
            self.kubectl(*args)

    def install_chart(self, tag: str = APP_TAG, extra: tuple[str, ...] = ()) -> None:
        self.log(f"6. The ordersaga chart ({APP_REPOSITORY}:{tag}) into {NAMESPACE} ...")
        started = time.monotonic()
        self.helm_run("installing ordersaga", *chart_install_args(tag, extra))
        self.log(f"   ordersaga is ready ({time.monotonic() - started:.0f}s)")

    def uninstall_ordersaga(self) -> None:
        self.helm_run("uninstalling ordersaga", "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
