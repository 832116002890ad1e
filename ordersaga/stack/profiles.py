"""What differs between the profiles (DESIGN.md): the stores and the broker, the processes that
run them, the resource files the sidecars load, and the connection settings each sidecar gets.

- embedded: SQLite state stores (files in the run directory, no process) and NATS JetStream;
- production: PostgreSQL (`state.postgresql` v2 for every store, the actor store included) and
  Apache Kafka in KRaft mode: the component files a Kubernetes deployment uses.

A profile's `prepare` finds (or installs, or fetches) everything it needs before anything starts,
and fails with one message naming everything that is missing.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from order_service.topics import ALL_TOPICS
from ordersaga.stack import jetstream, kafka, postgres
from ordersaga.stack.layout import HOST, StackState
from ordersaga.stack.specs import ProcessSpec, http_ok


class ProfileUnavailable(RuntimeError):
    """Something the profile needs is missing; the message says what to install."""


class Embedded:
    name = "embedded"

    def prepare(self, log) -> None:
        try:
            jetstream.nats_server_binary()
        except RuntimeError as error:
            raise ProfileUnavailable(str(error)) from None

    def infra_specs(self, state: StackState, env: dict[str, str]) -> list[ProcessSpec]:
        p, data = state.ports, state.run_dir / "data"
        conf = data / "nats.conf"
        return [ProcessSpec(
            name="nats",
            argv=[jetstream.nats_server_binary(), "-c", str(conf)],
            env=env,
            ports=[p.nats, p.nats_monitor],
            healthy=lambda: http_ok(f"http://{HOST}:{p.nats_monitor}/healthz?js-enabled-only=true"),
            kind="broker",
            before_start=lambda: jetstream.write_config(conf, host=HOST, port=p.nats, monitor_port=p.nats_monitor,
                                                        store_dir=data / "nats"),
        )]

    def provision(self, state: StackState) -> None:
        """Streams before any sidecar subscribes (idempotent: every `up` that starts apps)."""
        jetstream.ensure_streams(self.nats_url(state))

    def sidecar_env(self, state: StackState, app_id: str) -> dict[str, str]:
        return {"ORDERSAGA_NATS_URL": self.nats_url(state)}

    @staticmethod
    def nats_url(state: StackState) -> str:
        return f"nats://{HOST}:{state.ports.nats}"


# Each service's database in the production profile, and the sidecar env var that carries its
# connection string (components/production/statestore-*.yaml read it through `envsecrets`).
DATABASES = {
    "order-service": ("ordersaga_order", "ORDERSAGA_PG_ORDER"),
    "inventory-service": ("ordersaga_inventory", "ORDERSAGA_PG_INVENTORY"),
    "payment-service": ("ordersaga_payment", "ORDERSAGA_PG_PAYMENT"),
    "shipping-service": ("ordersaga_shipping", "ORDERSAGA_PG_SHIPPING"),
}
KAFKA_BROKERS_ENV = "ORDERSAGA_KAFKA_BROKERS"


class Production:
    name = "production"

    def __init__(self) -> None:
        self._postgres: postgres.PostgresServer | None = None
        self._kafka: kafka.KafkaDist | None = None
        self._log = print

    def prepare(self, log) -> None:
        self._log = log
        problems = kafka.check_prerequisites()
        try:
            # Install PostgreSQL only when nothing else is missing: a failed `up` changes nothing.
            self._postgres = postgres.ensure_postgres(log, install=not problems)
        except postgres.PostgresUnavailable as error:
            problems.append(str(error))
        if problems:
            raise ProfileUnavailable("the production profile cannot start:\n- " + "\n- ".join(problems))
        self._kafka = kafka.ensure_kafka(log)

    def infra_specs(self, state: StackState, env: dict[str, str]) -> list[ProcessSpec]:
        assert self._postgres and self._kafka, "prepare() first"
        pg, dist = self._postgres, self._kafka
        p, data = state.ports, state.run_dir / "data"
        password = state.postgres_password
        # In the run directory, unless PostgreSQL's own user cannot reach it (postgres.cluster_dir).
        pg_data = postgres.cluster_dir(pg, data / "postgres", password, self._log)
        kafka_conf, kafka_logs = data / "kafka.properties", data / "kafka"

        def kafka_before_start() -> None:
            kafka.write_config(kafka_conf, host=HOST, port=p.kafka, controller_port=p.kafka_controller,
                               log_dir=kafka_logs)
            kafka.format_storage(dist, kafka_conf, kafka_logs)

        return [
            ProcessSpec(
                name="postgres",
                argv=postgres.server_argv(pg, pg_data, HOST, p.postgres),
                env=env,
                ports=[p.postgres],
                healthy=lambda: postgres.is_ready(HOST, p.postgres, password),
                kind="store",
                before_start=lambda: postgres.init_cluster(pg, pg_data, password),
                after_start=lambda: postgres.ensure_databases(HOST, p.postgres, password,
                                                              [db for db, _ in DATABASES.values()]),
                user=pg.run_as,
                stop_signal=signal.SIGINT,  # fast shutdown; SIGTERM would wait for every client to leave
            ),
            ProcessSpec(
                name="kafka",
                argv=kafka.server_argv(dist, kafka_conf),
                env=env,
                ports=[p.kafka, p.kafka_controller],
                healthy=lambda: kafka.is_ready(self.bootstrap(state)),
                kind="broker",
                before_start=kafka_before_start,
            ),
        ]

    def provision(self, state: StackState) -> None:
        """Topics before any sidecar subscribes, with a partition per replica at least."""
        kafka.ensure_topics(self.bootstrap(state), list(ALL_TOPICS), kafka.partitions_for(state.replicas))

    def sidecar_env(self, state: StackState, app_id: str) -> dict[str, str]:
        """Only the app's own database: the env secret store would hand any of them to its app."""
        database, variable = DATABASES[app_id]
        dsn = postgres.connection_string(HOST, state.ports.postgres, state.postgres_password, database)
        return {variable: dsn, KAFKA_BROKERS_ENV: self.bootstrap(state)}

    @staticmethod
    def bootstrap(state: StackState) -> str:
        return f"{HOST}:{state.ports.kafka}"


def profile(name: str):
    """The profile called `name`; ProfileUnavailable names the known ones otherwise."""
    known = {"embedded": Embedded, "production": Production}
    if name not in known:
        raise ProfileUnavailable(f"unknown profile {name!r}: choose {' or '.join(known)}")
    return known[name]()


def resources_paths(components: Path, name: str) -> list[Path]:
    """What the sidecars load (`--resources-path`, each folder without its subfolders): the shared
    resources (resiliency, the env secret store), then the profile's stores and broker."""
    return [components / "shared", components / name]


RETENTION_ENV = "ORDERSAGA_WORKFLOW_RETENTION_S"
_RETENTION_LINE = re.compile(r"^(\s*anyTerminal:\s*).*$", re.MULTILINE)
_TRACING_BLOCK = re.compile(r"^  tracing:\n    samplingRate: \"0\"\n", re.MULTILINE)


def config_file(components: Path, run_dir: Path, retention_s: str | None = None,
                zipkin_endpoint: str | None = None, name: str = "config.yaml") -> Path:
    """A sidecar's Configuration (`--config`), the same for both profiles: `name` is
    order-service's `config.yaml` or the services' `config-services.yaml` (the same, plus access
    control). With `retention_s` (finished workflows purged after that many seconds) or
    `zipkin_endpoint` (`up --observe`: every span sampled and sent there), a copy in the run
    directory says so."""
    shipped = components / name
    if not retention_s and not zipkin_endpoint:
        return shipped
    text = shipped.read_text()
    if retention_s:
        seconds = float(retention_s)  # ValueError names a bad setting
        text, replaced = _RETENTION_LINE.subn(lambda m: f"{m.group(1)}{seconds:g}s", text)
        if replaced != 1:
            raise ValueError(f"{shipped} has no single stateRetentionPolicy.anyTerminal to set")
    if zipkin_endpoint:
        tracing = f'  tracing:\n    samplingRate: "1"\n    zipkin:\n      endpointAddress: "{zipkin_endpoint}"\n'
        text, replaced = _TRACING_BLOCK.subn(lambda m: tracing, text)
        if replaced != 1:
            raise ValueError(f'{shipped} has no single `tracing: samplingRate: "0"` block to turn on')
    rendered = run_dir / name
    rendered.write_text(text)
    return rendered
