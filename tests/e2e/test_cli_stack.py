"""`ordersaga up --detach && ordersaga status --json && ordersaga down` leaves nothing behind,
and runs beside the session's stack without a port collision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordersaga.stack.processes import proc_start_time

CLI = [sys.executable, "-m", "ordersaga.cli"]


def run_cli(args, home: Path, timeout=180) -> subprocess.CompletedProcess:
    env = dict(os.environ, ORDERSAGA_HOME=str(home))
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_detached_stack_beside_the_session_stack_and_clean_down(tmp_path, stack):
    home = tmp_path / "second"
    try:
        up = run_cli(["up", "--detach"], home)
        assert up.returncode == 0, up.stderr
        assert "Stack is up" in up.stderr

        status = run_cli(["status", "--json"], home)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert set(report["apps"]) == {"order-service", "inventory-service", "payment-service", "shipping-service"}
        for app in report["apps"].values():
            assert app["running"] and app["app_pid"] and app["daprd_pid"]
            assert {"app_grpc_port", "dapr_grpc_port", "dapr_http_port"} <= set(app)
        assert report["dapr_version"].startswith("1.18.")

        ours = {a["dapr_grpc_port"] for a in report["apps"].values()}
        theirs = {a.dapr_grpc for app in stack.state().ports.apps.values() for a in app}
        assert not ours & theirs
        pids = [p["pid"] for p in report["processes"].values()]
        assert len(pids) == 12  # with sentry (mTLS)
        assert report["mtls"] and report["infrastructure"]["sentry"]["running"]

        again = run_cli(["up", "--detach"], home)  # idempotent: nothing new started
        assert "already running" in again.stderr
    finally:
        down = run_cli(["down"], home)
    assert down.returncode == 0, down.stderr
    assert all(proc_start_time(pid) is None for pid in pids), "a process outlived `ordersaga down`"
    assert run_cli(["status", "--json"], home).returncode == 1


def test_status_without_a_stack_says_so(tmp_path):
    result = run_cli(["status"], tmp_path / "nothing")
    assert result.returncode == 1
    assert "No stack" in result.stdout
