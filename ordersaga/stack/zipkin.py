"""The trace backend of `ordersaga up --observe`: a Zipkin server on loopback.

Maven Central ships Zipkin's server as one executable jar (`io.zipkin:zipkin-server:...:exec`),
so, as for Kafka, Maven fetches it once into the user cache (progress shown) and it runs on
Java 17+. Storage is in memory: traces live as long as the stack. The sidecars (Dapr's tracing
Configuration) and the apps (OpenTelemetry's Zipkin exporter) send spans to `/api/v2/spans`;
people and tests read them from `/api/v2/traces` and the UI at `/zipkin/`.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from ordersaga.stack import java
from ordersaga.stack.runtime import cache_root

ZIPKIN_VERSION = "3.5.1"
ARTIFACT = f"io.zipkin:zipkin-server:{ZIPKIN_VERSION}:jar:exec"


class ZipkinUnavailable(RuntimeError):
    """Java or the server's jar is missing; the message says what to install."""


def jar_path() -> Path:
    return cache_root() / "zipkin" / f"zipkin-server-{ZIPKIN_VERSION}-exec.jar"


def check_prerequisites() -> list[str]:
    """What is missing to run Zipkin, as lines naming what to install (empty: nothing)."""
    return java.problems(f"Zipkin {ZIPKIN_VERSION} (the trace backend of --observe)",
                         needs_maven=not jar_path().is_file())


def ensure_zipkin(log: Callable[[str], None] = print) -> Path:
    """The server jar in the user cache (fetched once with Maven); ZipkinUnavailable otherwise."""
    problems = check_prerequisites()
    if problems:
        raise ZipkinUnavailable("`up --observe` cannot start:\n- " + "\n- ".join(problems))
    jar = jar_path()
    if not jar.is_file():
        _fetch(jar, log)
    return jar


def _fetch(jar: Path, log: Callable[[str], None]) -> None:
    """`mvn dependency:copy` into a staging folder; the jar is moved into place only when whole."""
    staging = jar.parent / "partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"Fetching Zipkin server {ZIPKIN_VERSION} (one jar, about 130 MB) from Maven Central into {jar.parent} ...")
    started = time.monotonic()
    argv = [shutil.which("mvn") or "mvn", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={staging}"]
    proc = subprocess.Popen(argv, cwd=staging, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def ticker() -> None:  # Maven prints nothing while the one large file downloads
        while not done.wait(10):
            log(f"  ... {time.monotonic() - started:4.0f}s")

    threading.Thread(target=ticker, daemon=True).start()
    assert proc.stdout is not None
    lines = proc.stdout.readlines()
    code = proc.wait()
    done.set()
    fetched = list(staging.glob("zipkin-server-*.jar"))
    if code != 0 or not fetched:
        tail = "".join(lines[-20:])
        raise ZipkinUnavailable(f"Maven could not fetch {ARTIFACT} (exit {code}):\n{tail}")
    fetched[0].replace(jar)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"  {jar.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.0f}s")


def server_argv(jar: Path, host: str, port: int) -> list[str]:
    # A small heap: in-memory storage of one stack's traces; MEM_MAX_SPANS bounds it (env).
    # Zipkin 3 serves through Armeria, which binds where `armeria.ports` says (loopback only).
    return [shutil.which("java") or "java", "-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", "-jar", str(jar),
            f"--armeria.ports[0].ip={host}", f"--armeria.ports[0].port={port}",
            "--armeria.ports[0].protocols=http", "--logging.level.root=WARN"]


def server_env(base: dict[str, str]) -> dict[str, str]:
    return dict(base, STORAGE_TYPE="mem", MEM_MAX_SPANS="200000", COLLECTOR_SCRIBE_ENABLED="false")


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def spans_endpoint(host: str, port: int) -> str:
    """Where the sidecars and the apps post spans (Zipkin's v2 JSON API)."""
    return f"http://{host}:{port}/api/v2/spans"
