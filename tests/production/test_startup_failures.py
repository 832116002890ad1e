"""`up --profile production` when something is wrong: it says what, names the failing process
with the last lines of its log, and leaves nothing running (what it started is stopped again).

Each test has a run directory of its own (not the session's stack)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ordersaga.stack import postgres, processes
from ordersaga.stack.layout import HOST, Ports, StackState
from ordersaga.stack.stack import Stack, StackError


@pytest.fixture()
def run_dir():
    scratch = Path(tempfile.mkdtemp(prefix="ordersaga-startup-"))
    scratch.chmod(0o711)  # reachable by the postgres user under root
    yield scratch / ".ordersaga"
    shutil.rmtree(scratch, ignore_errors=True)


def nothing_runs(run_dir: Path) -> bool:
    state = StackState.load(run_dir)
    return state is None or not any(processes.is_running(r) for r in state.processes.values())


def test_missing_java_maven_and_postgres_are_named_in_one_error_and_nothing_starts(run_dir, tmp_path):
    env = dict(os.environ, ORDERSAGA_HOME=str(run_dir), PATH=str(tmp_path / "empty-path"),
               ORDERSAGA_PG_BIN_DIR=str(tmp_path / "no-postgres"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-m", "ordersaga.cli", "up", "--profile", "production", "--detach"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = result.stderr
    assert "the production profile cannot start" in error
    assert "Java 17+ is not installed" in error and "openjdk-17-jre-headless" in error
    assert "Maven is not installed" in error and "`maven` package" in error
    assert "PostgreSQL server binaries (initdb, postgres) not found" in error and "`postgresql` package" in error
    assert nothing_runs(run_dir)
    assert not (tmp_path / "cache" / "ordersaga" / "dapr").exists(), "nothing was built either"


def test_a_broker_that_will_not_start_is_named_with_its_log_and_the_database_is_stopped(run_dir):
    # A log directory formatted for another node: Kafka refuses to start on it.
    kafka_logs = run_dir / "data" / "kafka"
    kafka_logs.mkdir(parents=True)
    (kafka_logs / "meta.properties").write_text("version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n"
                                                "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n")
    stack = Stack(run_dir, tie_to_parent=True, log=lambda m: None)
    with pytest.raises(StackError) as failure:
        stack.up(timeout=60, profile="production")
    message = str(failure.value)
    assert message.startswith("kafka exited during start-up") and "Last lines of" in message
    assert "node" in message.lower(), message  # Kafka's own explanation, from its log
    assert nothing_runs(run_dir), "postgres, started in the same wave, must be stopped again"


def test_a_database_that_refuses_us_is_named_at_once_and_nothing_is_left_running(run_dir):
    # The cluster was made with another password than the one stack.json holds.
    server = postgres.ensure_postgres(install=False)
    postgres.init_cluster(server, run_dir / "data" / "postgres", "the-other-password")
    StackState(run_dir, Ports.allocate(), profile="production").save()
    stack = Stack(run_dir, tie_to_parent=True, log=lambda m: None)
    with pytest.raises(StackError) as failure:
        stack.up(timeout=60)
    message = str(failure.value)
    assert message.startswith("postgres refused to serve")
    assert "password authentication failed" in message
    assert nothing_runs(run_dir)


def test_a_port_taken_on_restart_is_named_with_the_log(run_dir):
    """On a cold start busy ports move elsewhere; a process restarted beside running ones must
    keep its port (the others point at it), so a port taken meanwhile is an error."""
    state = StackState(run_dir, Ports.allocate(), profile="production")
    run_dir.joinpath("logs").mkdir(parents=True)
    # Something of the stack still runs (so this is a restart, not a cold start).
    record, _ = processes.spawn("placement", [sys.executable, "-c", "import time; time.sleep(120)"], env={},
                                cwd=run_dir, log_path=run_dir / "logs" / "placement.log", tie_to_parent=True,
                                kind="control")
    state.processes["placement"] = record
    state.save()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((HOST, state.ports.postgres))
    squatter.listen()
    try:
        with pytest.raises(StackError) as failure:
            Stack(run_dir, tie_to_parent=True, log=lambda m: None).up(timeout=60)
    finally:
        squatter.close()
        processes.kill(record)
    message = str(failure.value)
    assert message.startswith("postgres exited during start-up"), message
    assert "could not bind" in message or "Address already in use" in message, message
    after = StackState.load(run_dir)
    assert set(after.processes) == {"placement"}, "kafka, started beside postgres, is stopped and forgotten"
    assert json.loads(after.path.read_text())["profile"] == "production"
