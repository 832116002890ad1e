"""Offline checks of the Kubernetes deployment: no cluster, no images, no network once helm and
the dapr module are in the caches.

Fixtures: helm (found or built, ordersaga/deploytools.py), the chart rendered with each values
file in values/, and Dapr's CRDs from the dapr module in the Go module cache (downloaded into it
when missing). A missing tool fails the session with what to install; nothing is skipped.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ordersaga.deploytools import ensure_helm
from ordersaga.stack.runtime import DAPR_VERSION, GO_BUILD_ENV, RuntimeProvisionError
from tests.deploy.chart import CHART, NAMESPACE, RELEASE, ROOT, VALUES_DIR, run_helm, unexpected_stderr
from tests.deploy.schemas import CrdValidator


@pytest.fixture(scope="session")
def helm(request) -> Path:
    # A cold build takes a minute or more: its progress lines go to the terminal, not to pytest's capture.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        try:
            path, _ = ensure_helm(log=lambda message: print(message, flush=True))
        except RuntimeProvisionError as error:
            pytest.fail(f"tests/deploy need helm: {error}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def render(helm):
    """render(name) -> the objects `helm template` makes with values/<name>.yaml ("defaults": none)."""
    cache: dict[str, list[dict]] = {}

    def render(name: str) -> list[dict]:
        if name not in cache:
            args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
            if name != "defaults":
                args += ["--values", str(VALUES_DIR / f"{name}.yaml")]
            result = run_helm(helm, *args)
            assert result.returncode == 0, f"helm template ({name}) failed:\n{result.stderr}"
            assert not unexpected_stderr(result.stderr), result.stderr
            cache[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return copy.deepcopy(cache[name])

    return render


@pytest.fixture(scope="session")
def dapr_module() -> Path:
    """The github.com/dapr/dapr module (its CRDs and injector sources), at the runtime's version.

    `go mod download` inside dapr-runtime/ verifies it against that module's committed go.sum,
    and answers from the module cache when the daprd build already fetched it.
    """
    go = shutil.which("go")
    if not go:
        pytest.fail("Go is not installed: tests/deploy read Dapr's CRDs from the dapr module it fetches. "
                    "Install Go >= 1.26.6 (e.g. from your distribution or go.dev).", pytrace=False)
    result = subprocess.run(
        [go, "mod", "download", "-json", f"github.com/dapr/dapr@v{DAPR_VERSION}"],
        cwd=ROOT / "dapr-runtime", env=dict(os.environ, **GO_BUILD_ENV),
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"go mod download github.com/dapr/dapr@v{DAPR_VERSION} failed:\n{result.stdout}{result.stderr}",
                    pytrace=False)
    return Path(json.loads(result.stdout)["Dir"])


@pytest.fixture(scope="session")
def crds(dapr_module) -> CrdValidator:
    files = sorted((dapr_module / "charts" / "dapr" / "crds").glob("*.yaml"))
    assert files, f"no CRDs in {dapr_module}/charts/dapr/crds"
    return CrdValidator(files)
