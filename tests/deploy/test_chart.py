"""The chart lints cleanly, renders with every values file, and reads the Dapr resources from the
repository's components/ folder (one source of truth for the local stack and the cluster)."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.chart import (
    APP_IDS,
    CHART,
    NAMESPACE,
    RELEASE,
    RENDERS,
    ROOT,
    VALUES_DIR,
    by_kind,
    run_helm,
    unexpected_stderr,
)


@pytest.mark.parametrize("name", RENDERS)
def test_helm_lint_is_clean_in_strict_mode(helm, name):
    args = ["lint", "--strict", str(CHART)]
    if name != "defaults":
        args += ["--values", str(VALUES_DIR / f"{name}.yaml")]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = [line for line in result.stdout.splitlines() if line.startswith("[")]
    # The only finding allowed: Chart.yaml has no icon (an INFO).
    assert findings == ["[INFO] Chart.yaml: icon is recommended"], result.stdout
    assert not unexpected_stderr(result.stderr), result.stderr


def test_the_dapr_resources_are_the_repositorys_own_files():
    link = CHART / "components"
    assert link.is_symlink(), "deploy/helm/ordersaga/components must link to the repository's components/"
    assert not link.readlink().is_absolute(), "the link must be relative, so every clone resolves it"
    assert link.resolve() == (ROOT / "components").resolve()


def test_a_packaged_chart_carries_the_linked_files(helm, render, tmp_path):
    """`helm package` follows the link too, so a chart pushed to a repository is complete."""
    result = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("ordersaga-*.tgz")
    rendered = run_helm(helm, "template", RELEASE, str(archive), "--namespace", NAMESPACE)
    assert rendered.returncode == 0, rendered.stderr
    assert [doc for doc in yaml.safe_load_all(rendered.stdout) if doc] == render("defaults")


@pytest.mark.parametrize("name", RENDERS)
def test_each_render_has_one_deployment_per_app(render, name):
    objects = render(name)
    assert {d["metadata"]["name"] for d in by_kind(objects, "Deployment")} == APP_IDS
    # order-service's and the services' (with access control)
    assert {c["metadata"]["name"] for c in by_kind(objects, "Configuration")} == {"ordersaga", "ordersaga-services"}


def test_replica_counts_come_from_the_values(render):
    assert {d["spec"]["replicas"] for d in by_kind(render("defaults"), "Deployment")} == {1}
    assert {d["spec"]["replicas"] for d in by_kind(render("replicas-2"), "Deployment")} == {2}


def test_the_connections_secret_is_created_only_when_asked(render):
    assert not by_kind(render("defaults"), "Secret")
    (secret,) = by_kind(render("all-options"), "Secret")
    assert secret["metadata"]["name"] == "quickstart-connections"
    assert all(secret["stringData"].values())


def test_a_quick_start_secret_needs_every_value(helm):
    result = run_helm(helm, "template", "ordersaga", str(CHART), "--set", "connections.create=true")
    assert result.returncode != 0
    assert "is required when connections.create is true" in result.stderr
