"""The cluster gets the Dapr resources the local production profile loads, read from the same
files: equal objects, except that the Configurations have no spec.nameResolution (SQLite name
resolution is for one machine; on Kubernetes daprd uses the cluster's DNS) and the services'
access control names order-service in the release's namespace."""

from __future__ import annotations

from pathlib import Path

import yaml

from ordersaga.stack.layout import APPS
from ordersaga.stack.profiles import resources_paths
from ordersaga.stack.sentry import config_name
from tests.deploy.chart import NAMESPACE, RENDERS, ROOT, is_dapr

COMPONENTS = ROOT / "components"
# What `ordersaga up --profile production` hands every daprd.
RESOURCES_PATHS = resources_paths(COMPONENTS, "production")
# What `ordersaga up` hands each app's daprd as --config (order-service's, the services').
CONFIG_FILES = sorted({COMPONENTS / config_name(app_id, mtls=True) for app_id in APPS})


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def local_production_resources() -> dict[tuple[str, str], dict]:
    """What daprd loads: every YAML file of each resources path (not their subfolders), where it
    skips Configurations, and the --config files' Configurations."""
    loaded = {}
    for folder in RESOURCES_PATHS:
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            for doc in _documents(path):
                if doc["kind"] != "Configuration":
                    assert _key(doc) not in loaded, f"{path}: {_key(doc)} defined twice"
                    loaded[_key(doc)] = doc
    for path in CONFIG_FILES:
        (config,) = _documents(path)
        assert _key(config) not in loaded, f"{path}: {_key(config)} defined twice"
        loaded[_key(config)] = config
    return loaded


def rendered_resources(objects: list[dict]) -> dict[tuple[str, str], dict]:
    dapr = [obj for obj in objects if is_dapr(obj)]
    assert len({_key(obj) for obj in dapr}) == len(dapr), "a Dapr resource is rendered twice"
    return {_key(obj): obj for obj in dapr}


def test_the_local_profile_has_what_the_chart_needs():
    kinds = {kind for kind, _ in local_production_resources()}
    assert kinds == {"Component", "Configuration", "Resiliency"}
    assert [path.name for path in CONFIG_FILES] == ["config-services.yaml", "config.yaml"]
    for path in CONFIG_FILES:
        (config,) = _documents(path)
        assert "nameResolution" in config["spec"], f"{path.name} is expected to carry nameResolution"


def test_the_chart_renders_exactly_the_local_production_resources(render):
    expected = local_production_resources()
    for key, obj in expected.items():
        if key[0] == "Configuration":
            obj["spec"].pop("nameResolution")
            for policy in obj["spec"].get("accessControl", {}).get("policies", []):
                assert policy["namespace"] == "default"  # the local stack's namespace
                policy["namespace"] = NAMESPACE  # the release's
    for name in RENDERS:  # the values never change the Dapr resources
        rendered = rendered_resources(render(name))
        assert sorted(rendered) == sorted(expected), name
        for key in expected:
            assert rendered[key] == expected[key], f"{name}: {key} differs from components/"

