"""The cluster gets the Dapr resources the local production profile loads, read from the same
files: equal objects, except that the Configuration has no spec.nameResolution (SQLite name
resolution is for one machine; on Kubernetes daprd uses the cluster's DNS)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ordersaga.stack.profiles import resources_paths
from tests.deploy.chart import RENDERS, ROOT, is_dapr

COMPONENTS = ROOT / "components"
# What `ordersaga up --profile production` hands every daprd.
RESOURCES_PATHS = resources_paths(COMPONENTS, "production")
CONFIG_FILE = COMPONENTS / "config.yaml"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def local_production_resources() -> dict[tuple[str, str], dict]:
    """What daprd loads: every YAML file of each resources path (not their subfolders), where it
    skips Configurations, and the --config file's Configuration."""
    loaded = {}
    for folder in RESOURCES_PATHS:
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            for doc in _documents(path):
                if doc["kind"] != "Configuration":
                    assert _key(doc) not in loaded, f"{path}: {_key(doc)} defined twice"
                    loaded[_key(doc)] = doc
    (config,) = _documents(CONFIG_FILE)
    loaded[_key(config)] = config
    return loaded


def rendered_resources(objects: list[dict]) -> dict[tuple[str, str], dict]:
    dapr = [obj for obj in objects if is_dapr(obj)]
    assert len({_key(obj) for obj in dapr}) == len(dapr), "a Dapr resource is rendered twice"
    return {_key(obj): obj for obj in dapr}


def test_the_local_profile_has_what_the_chart_needs():
    kinds = {kind for kind, _ in local_production_resources()}
    assert kinds == {"Component", "Configuration", "Resiliency"}
    (config,) = _documents(CONFIG_FILE)
    assert "nameResolution" in config["spec"], "the local Configuration is expected to carry nameResolution"


def test_the_chart_renders_exactly_the_local_production_resources(render):
    expected = local_production_resources()
    for key, obj in expected.items():
        if key[0] == "Configuration":
            obj["spec"].pop("nameResolution")
    for name in RENDERS:  # the values never change the Dapr resources
        rendered = rendered_resources(render(name))
        assert sorted(rendered) == sorted(expected), name
        for key in expected:
            assert rendered[key] == expected[key], f"{name}: {key} differs from components/"

