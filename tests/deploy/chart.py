"""The chart under test and what the tests share about it: where it is, how it is rendered."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ordersaga.stack.runtime import project_root

ROOT = project_root()
CHART = ROOT / "deploy" / "helm" / "ordersaga"
VALUES_DIR = Path(__file__).parent / "values"
# The values files the chart is rendered with: the defaults, then each file in values/.
RENDERS = ["defaults", "replicas-2", "all-options"]
RELEASE = NAMESPACE = "ordersaga"
# DESIGN.md: the app ids are part of the external contract.
APP_IDS = {"order-service", "inventory-service", "payment-service", "shipping-service"}
# The one line helm prints (stderr) for the chart's `components` symlink, with absolute paths.
SYMLINK_NOTICE = "found symbolic link in path:"


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def unexpected_stderr(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and SYMLINK_NOTICE not in line]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def is_dapr(obj: dict) -> bool:
    return obj["apiVersion"].split("/")[0] == "dapr.io"
