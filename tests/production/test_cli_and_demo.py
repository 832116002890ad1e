"""The README's production commands on the production stack: `up` with its options, the CLI, and
the demo's six saga paths, all through the public API and any live sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(stack, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, ORDERSAGA_HOME=str(stack.run_dir))
    return subprocess.run([sys.executable, "-m", *argv], env=env, capture_output=True, text=True, timeout=timeout)


def test_up_with_the_same_options_starts_nothing(stack):
    before = json.loads(run(stack, "ordersaga.cli", "status", "--json").stdout)
    again = run(stack, "ordersaga.cli", "up", "--profile", "production", "--replicas", "2", "--detach")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    after = json.loads(run(stack, "ordersaga.cli", "status", "--json").stdout)
    assert after["processes"] == before["processes"]
    assert (after["profile"], after["replicas"]) == ("production", 2)
    assert set(after["infrastructure"]) == {"postgres", "kafka", "sentry", "placement", "scheduler"}
    assert all(len(app["replicas"]) == 2 for app in after["apps"].values())


def test_another_profile_on_a_running_stack_is_refused_and_changes_nothing(stack):
    before = json.loads(run(stack, "ordersaga.cli", "status", "--json").stdout)
    refused = run(stack, "ordersaga.cli", "up", "--profile", "embedded", "--detach")
    assert refused.returncode == 1
    assert "runs the production profile" in refused.stderr and "Traceback" not in refused.stderr
    assert json.loads(run(stack, "ordersaga.cli", "status", "--json").stdout)["processes"] == before["processes"]


@pytest.mark.timeout(600)
def test_the_demo_runs_every_path_on_the_production_stack(stack):
    demo = run(stack, "ordersaga.demo", timeout=540)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Demo on the production profile, 2 replica(s) per app" in demo.stdout
    assert "Demo finished: 6/6 saga paths ended as expected" in demo.stdout
    assert json.loads(run(stack, "ordersaga.cli", "status", "--json").stdout)["running"], "the demo left it running"
