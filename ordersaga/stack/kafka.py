"""Apache Kafka for the production profile: one KRaft node (broker and controller) on loopback.

No package ships a Kafka broker here, but Maven Central has its jars: `ensure_kafka` fetches
them once with Maven into a per-user cache (progress shown), and the broker runs as
`java -cp 'libs/*' kafka.Kafka server.properties` on Java 17+. The stack creates its topics
before any sidecar subscribes, with at least as many partitions as an app has replicas (the
replicas share a consumer group, and a partition feeds one member of a group).
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ordersaga.stack import java
from ordersaga.stack.runtime import cache_root

KAFKA_VERSION = "4.1.1"
SCALA = "2.13"
LOG4J_VERSION = "2.24.3"  # what kafka 4.1.1 depends on; the slf4j binding is added beside it
MIN_PARTITIONS = 4
RETENTION_HOURS = 14 * 24  # approvals may take days; keep two weeks, as the embedded broker does

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <!-- Only a list of jars to fetch: `mvn dependency:copy-dependencies` copies them to libs/. -->
  <groupId>local.ordersaga</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <!-- Kafka logs through slf4j 1.x; without a binding it would log nothing at all. -->
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

# Warnings and errors only: a broker at INFO writes several lines per consumer group change.
_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
"""


class KafkaUnavailable(RuntimeError):
    """Java, Maven or the broker's jars are missing; the message says what to install."""


@dataclass(frozen=True)
class KafkaDist:
    home: Path  # holds libs/ and log4j2.yaml
    java: str

    @property
    def classpath(self) -> str:
        return str(self.home / "libs" / "*")


def check_prerequisites() -> list[str]:
    """What is missing to run the broker, as lines naming what to install (empty: nothing)."""
    return java.problems(f"Kafka {KAFKA_VERSION}", needs_maven=not _jars_present())


def _home() -> Path:
    return cache_root() / "kafka" / f"{SCALA}-{KAFKA_VERSION}"


def _jars_present() -> bool:
    return (_home() / "libs" / f"kafka_{SCALA}-{KAFKA_VERSION}.jar").is_file()


def ensure_kafka(log: Callable[[str], None] = print) -> KafkaDist:
    """The broker's jars in the user cache (fetched once with Maven), and the java to run them."""
    problems = check_prerequisites()
    if problems:
        raise KafkaUnavailable("\n".join(problems))
    home = _home()
    if not _jars_present():
        _fetch_jars(home, log)
    (home / "log4j2.yaml").write_text(_LOG4J2)
    return KafkaDist(home=home, java=shutil.which("java") or "java")


def _fetch_jars(home: Path, log: Callable[[str], None]) -> None:
    """`mvn dependency:copy-dependencies` into a staging folder, renamed into place when whole."""
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "pom.xml").write_text(_POM)
    log(f"Fetching Apache Kafka {KAFKA_VERSION} (broker jars, about 45 MB) from Maven Central into {home} ...")
    started = time.monotonic()
    argv = [shutil.which("mvn") or "mvn", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
            "-DoutputDirectory=libs"]
    proc = subprocess.Popen(argv, cwd=staging, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fetched = 0
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(10):
            log(f"  ... {time.monotonic() - started:4.0f}s, {fetched} files downloaded")

    threading.Thread(target=ticker, daemon=True).start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Downloaded from" in line:
            fetched += 1
    code = proc.wait()
    done.set()
    if code != 0:
        tail = "".join(lines[-20:])
        raise KafkaUnavailable(f"Maven could not fetch the Kafka jars (exit {code}):\n{tail}")
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    size = sum(f.stat().st_size for f in (home / "libs").iterdir()) / 1e6
    log(f"  {len(list((home / 'libs').iterdir()))} jars, {size:.0f} MB, in {time.monotonic() - started:.0f}s")


# ---- the broker ---------------------------------------------------------------------------------

def write_config(path: Path, *, host: str, port: int, controller_port: int, log_dir: Path) -> None:
    path.write_text(f"""# One node that is broker and controller (KRaft), on loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers (sidecars) join their group at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# Topics are created by `ordersaga up` with enough partitions; a typo must not make a new one.
auto.create.topics.enable=false
num.partitions={MIN_PARTITIONS}
log.retention.hours={RETENTION_HOURS}
# One node has no replica to keep a message the kernel had not written out yet: flush every
# message before it is acknowledged, so an approval the broker took survives power loss, as
# on the embedded profile (a cluster keeps that promise with replicas: docs/deploying.md).
log.flush.interval.messages=1
""")


def format_storage(dist: KafkaDist, config: Path, log_dir: Path) -> None:
    """Format the log directory once (KRaft needs a cluster id before the first start)."""
    if (log_dir / "meta.properties").is_file():
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()  # Kafka's Uuid form
    argv = [dist.java, "-cp", dist.classpath, f"-Dlog4j2.configurationFile={dist.home / 'log4j2.yaml'}",
            # One argument with `=`: a random id may start with '-', which would read as an option.
            "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(config)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise KafkaUnavailable(f"formatting Kafka's storage in {log_dir} failed (exit {proc.returncode}):\n{tail}")


def server_argv(dist: KafkaDist, config: Path) -> list[str]:
    # A small heap: the broker holds a few topics; Kafka's own script would take 1 GB.
    return [dist.java, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={dist.home / 'log4j2.yaml'}", "-cp", dist.classpath,
            "kafka.Kafka", str(config)]


# librdkafka logs every refused connection while the broker starts: keep that out of the way.
_CLIENT_LOG = logging.getLogger("ordersaga.kafka.client")
_CLIENT_LOG.addHandler(logging.NullHandler())
_CLIENT_LOG.propagate = False


def _admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "logger": _CLIENT_LOG,
                        "socket.connection.setup.timeout.ms": 2000})


def is_ready(bootstrap: str) -> bool:
    """The broker answers metadata requests (it has registered with its controller)."""
    try:
        return bool(_admin(bootstrap).list_topics(timeout=2).brokers)
    except Exception:  # noqa: BLE001 - KafkaException and friends while it starts
        return False


def ensure_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create missing topics, and grow existing ones to `partitions`; idempotent."""
    from confluent_kafka.admin import NewPartitions, NewTopic

    admin = _admin(bootstrap)
    existing = admin.list_topics(timeout=10).topics
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=1,
                        config={"retention.ms": str(RETENTION_HOURS * 3600 * 1000)})
               for t in topics if t not in existing]
    if missing:
        for future in admin.create_topics(missing, request_timeout=15).values():
            future.result()
    grow = [NewPartitions(t, partitions) for t in topics
            if t in existing and len(existing[t].partitions) < partitions]
    if grow:
        for future in admin.create_partitions(grow, request_timeout=15).values():
            future.result()


def partitions_for(replicas: int) -> int:
    return max(MIN_PARTITIONS, replicas)

