"""helm is provisioned like daprd: found on the PATH at v3.22.x, or built once from the committed
wrapper module into a per-user cache keyed by that module."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from ordersaga import deploytools
from ordersaga.stack.runtime import RuntimeProvisionError


def fake_helm(directory, version):
    directory.mkdir(parents=True, exist_ok=True)
    helm = directory / "helm"
    helm.write_text(f'#!/bin/sh\necho "{version}+g0123abc"\n')
    helm.chmod(0o755)
    return helm


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """No helm on the PATH (but sh), and an empty cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shutil.which("sh"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return bin_dir


def test_a_helm_322_on_the_path_is_used_as_is(isolated):
    helm = fake_helm(isolated, "v3.22.1")
    assert deploytools.ensure_helm(log=lambda _: None) == (helm, "path")


def test_a_built_helm_is_found_in_the_cache_by_fingerprint(isolated, tmp_path):
    fake_helm(isolated, "v3.19.0")  # another version on the PATH is not used
    module = deploytools.tools_module()
    built = fake_helm(tmp_path / "cache" / "ordersaga" / "tools" / deploytools._fingerprint(module), "v3.22.0")
    assert deploytools.ensure_helm(log=lambda _: None) == (built, "built")


def test_without_go_the_error_says_what_to_install(isolated):
    with pytest.raises(RuntimeProvisionError, match="Go is not installed") as error:
        deploytools.ensure_helm(log=lambda _: None)
    assert "helm v3.22.0" in str(error.value) and "PATH" in str(error.value)


def test_the_build_is_keyed_by_the_committed_wrapper_module(tmp_path):
    module = deploytools.tools_module()
    assert "tool helm.sh/helm/v3/cmd/helm" in (module / "go.mod").read_text()
    assert f"helm.sh/helm/v3 {deploytools.HELM_VERSION} h1:" in (module / "go.sum").read_text()
    copy = tmp_path / "tools"
    shutil.copytree(module, copy)
    before = deploytools._fingerprint(copy)
    (copy / "go.sum").write_text((copy / "go.sum").read_text() + "\n")
    assert len(before) == 12 and deploytools._fingerprint(copy) != before


def test_helm_is_stamped_with_its_version_and_the_kubernetes_it_assumes_offline():
    flags = deploytools._ldflags(deploytools.tools_module())
    assert f"internal/version.version={deploytools.HELM_VERSION}" in flags
    # client-go v0.37.x is Kubernetes 1.37; unstamped, helm would assume 1.20 and refuse the chart.
    minor = int(flags.split("chartutil.k8sVersionMinor=")[1].split()[0])
    assert minor >= 27


def test_the_module_entry_prints_where_helm_is(helm):
    result = subprocess.run([sys.executable, "-m", "ordersaga.deploytools"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("helm v3.22.") and str(helm) in result.stdout
