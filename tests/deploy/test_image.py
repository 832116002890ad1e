"""The Dockerfile (which cannot be built here) installs the service runtime and nothing else, and
agrees with the chart on the user and the modules the Deployments run."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.deploy.chart import CHART, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


KIT = "dapr-saga"  # the saga kit, a package of its own in the repository (its own pyproject)


def runtime_packages() -> set[str]:
    """The packages pyproject.toml ships, minus the `ordersaga` tooling (CLI, supervisor, bench)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*") for pattern in patterns} - {"ordersaga"}


def test_the_base_is_python_311_slim():
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == ["python:3.11-slim"]


def test_only_the_runtime_packages_are_copied_and_installed_without_extras():
    copied = set(re.findall(r"^COPY ([\w-]+) \1$", DOCKERFILE, re.M))
    assert copied == runtime_packages() | {KIT}
    (install,) = re.findall(r"^RUN pip install (.*)$", DOCKERFILE, re.M)
    assert install.split()[:2] == [".", f"./{KIT}"] and "[" not in install, "extras (stack, test) stay out of the image"


def test_the_build_context_holds_only_what_the_image_needs():
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*", "an allowlist: .venv, .git and the run directory's tokens never reach the context"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == runtime_packages() | {KIT, "pyproject.toml", "README.md"}


def test_the_image_user_is_the_charts():
    (user,) = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M)
    template = (CHART / "templates" / "deployments.yaml").read_text()
    assert f"runAsUser: {user[0]}" in template and f"runAsGroup: {user[1]}" in template


def test_every_module_the_chart_runs_is_in_the_image():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    modules = {app["module"] for app in values["apps"].values()}
    assert modules <= runtime_packages()
    assert all((ROOT / module / "__main__.py").is_file() for module in modules)
