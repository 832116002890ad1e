"""Each Deployment agrees with the Dapr resources it runs with and with the app it runs: the app
ids of DESIGN.md, one port for daprd, the app and the probes, and a sidecar environment that holds
every secret its Components read through `envsecrets` (and nothing more)."""

from __future__ import annotations

import re

import pytest
import yaml

from ordersaga.stack.sentry import config_name
from tests.deploy.chart import APP_IDS, NAMESPACE, RENDERS, ROOT, by_kind

SECRET_STORE = "envsecrets"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def parse_env_from_secret(annotation: str) -> dict[str, tuple[str, str]]:
    """dapr.io/env-from-secret as Dapr 1.18.3's injector reads it (patcher.parseEnvVars and
    createSecretSource): `NAME=secret:key` or `NAME=secret` (key NAME), split at the commas that
    start another `NAME=`. Returns {NAME: (secret, key)}."""
    env = {}
    for part in re.split(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*=)", annotation):
        name, _, source = part.strip().partition("=")
        secret, _, key = source.partition(":")
        env[name] = (secret.strip(), key.strip() or secret.strip())
    return env


def secret_refs(components: list[dict], app_id: str) -> set[str]:
    """The secretKeyRef names of the Components the app's sidecar loads (scoped to it, or unscoped)."""
    refs = set()
    for component in components:
        if component.get("scopes") and app_id not in component["scopes"]:
            continue
        refs |= {item["secretKeyRef"]["name"] for item in component["spec"]["metadata"] if "secretKeyRef" in item}
    return refs


def deployments(objects: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}


def annotations(deployment: dict) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["annotations"]


def app_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container["env"]}


@pytest.mark.parametrize("name", RENDERS)
def test_each_deployment_is_one_app_of_the_design(render, name):
    for deployment_name, deployment in deployments(render(name)).items():
        meta = annotations(deployment)
        assert meta["dapr.io/enabled"] == "true"
        assert meta["dapr.io/app-id"] == deployment_name
        assert deployment_name in APP_IDS
        python, dash_m, module = app_container(deployment)["command"]
        assert (python, dash_m) == ("python", "-m")
        assert (ROOT / module / "__main__.py").is_file(), f"{deployment_name} runs {module}, which is no app"


@pytest.mark.parametrize("name", RENDERS)
def test_daprd_the_app_and_the_probes_use_one_grpc_port(render, name):
    for deployment in deployments(render(name)).values():
        meta, container = annotations(deployment), app_container(deployment)
        port = int(meta["dapr.io/app-port"])
        assert meta["dapr.io/app-protocol"] == "grpc"
        assert int(env(container)["APP_PORT"]["value"]) == port
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for probe in PROBES:
            assert container[probe]["grpc"] == {"port": port}, probe
        # The kubelet probes the pod's IP, not its loopback.
        assert env(container)["ORDERSAGA_BIND_HOST"]["value"] == "0.0.0.0"


@pytest.mark.parametrize("name", RENDERS)
def test_each_sidecar_gets_exactly_the_secrets_its_components_read(render, name):
    objects = render(name)
    components = by_kind(objects, "Component")
    secret_name = None
    for app_id, deployment in deployments(objects).items():
        sidecar_env = parse_env_from_secret(annotations(deployment)["dapr.io/env-from-secret"])
        assert set(sidecar_env) == secret_refs(components, app_id), app_id
        # One Secret, whose keys are the variables' own names.
        assert {key for _, key in sidecar_env.values()} == set(sidecar_env)
        secrets = {secret for secret, _ in sidecar_env.values()}
        assert len(secrets) == 1
        secret_name = secret_name or secrets.pop()
    created = by_kind(objects, "Secret")
    if created:  # connections.create: the Secret the chart makes holds every key a sidecar reads
        (secret,) = created
        assert secret["metadata"]["name"] == secret_name
        assert set(secret["stringData"]) == set().union(*(secret_refs(components, a) for a in APP_IDS))


def test_every_secret_reference_goes_through_the_sidecars_environment(render):
    components = by_kind(render("defaults"), "Component")
    stores = {c["metadata"]["name"]: c for c in components if c["spec"]["type"].startswith("secretstores.")}
    assert stores[SECRET_STORE]["spec"]["type"] == "secretstores.local.env"
    assert not stores[SECRET_STORE].get("scopes"), "every sidecar needs the env secret store"
    for component in components:
        for item in component["spec"]["metadata"]:
            if "secretKeyRef" in item:
                assert component["auth"]["secretStore"] == SECRET_STORE, component["metadata"]["name"]
                # local.env answers a name with {name: value}: another key would read nothing.
                ref = item["secretKeyRef"]
                assert ref.get("key", ref["name"]) == ref["name"], component["metadata"]["name"]


@pytest.mark.parametrize("name", RENDERS)
def test_each_sidecar_uses_the_configuration_the_local_stack_gives_its_app(render, name):
    """order-service's (no access control), or the services' (only order-service may call them)."""
    objects = render(name)
    rendered = {config["metadata"]["name"]: config for config in by_kind(objects, "Configuration")}
    for app_id, deployment in deployments(objects).items():
        local = yaml.safe_load((ROOT / "components" / config_name(app_id, mtls=True)).read_text())
        assert annotations(deployment)["dapr.io/config"] == local["metadata"]["name"], app_id
        access = rendered[local["metadata"]["name"]]["spec"].get("accessControl")
        if app_id == "order-service":
            assert access is None  # its public API answers any caller
        else:
            assert access["defaultAction"] == "deny"
            assert [(p["appId"], p["namespace"], p["defaultAction"]) for p in access["policies"]] == \
                [("order-service", NAMESPACE, "allow")]


def test_fault_injection_is_off_unless_a_value_turns_it_on(render):
    for app_id, deployment in deployments(render("defaults")).items():
        assert "ORDERSAGA_FAULT_INJECTION" not in env(app_container(deployment)), app_id  # unset: off
    for app_id, deployment in deployments(render("all-options")).items():  # faultInjection: true
        variable = env(app_container(deployment)).get("ORDERSAGA_FAULT_INJECTION")
        assert (variable and variable["value"]) == (None if app_id == "order-service" else "on"), app_id


@pytest.mark.parametrize("name", RENDERS)
def test_every_dapr_annotation_is_one_the_injector_knows(render, dapr_module, name):
    source = (dapr_module / "pkg" / "injector" / "annotations" / "annotations.go").read_text()
    known = set(re.findall(r'"(dapr\.io/[a-z0-9-]+)"', source))
    assert "dapr.io/env-from-secret" in known
    for deployment in deployments(render(name)).values():
        used = {key for key in annotations(deployment) if key.startswith("dapr.io/")}
        assert used <= known, used - known


def test_tokens_are_off_by_default(render):
    for deployment in deployments(render("defaults")).values():
        assert not {"dapr.io/api-token-secret", "dapr.io/app-token-secret"} & set(annotations(deployment))
        assert not {"DAPR_API_TOKEN", "APP_API_TOKEN"} & set(env(app_container(deployment)))


def test_with_tokens_the_app_holds_what_its_sidecar_holds(render):
    for deployment in deployments(render("all-options")).values():
        meta, app_env = annotations(deployment), env(app_container(deployment))
        # Dapr's injector reads the key `token` of the named Secret for daprd; the app reads the same.
        for annotation, variable in (("dapr.io/api-token-secret", "DAPR_API_TOKEN"),
                                     ("dapr.io/app-token-secret", "APP_API_TOKEN")):
            assert app_env[variable]["valueFrom"]["secretKeyRef"] == {"name": meta[annotation], "key": "token"}


def test_the_apps_settings_reach_their_containers(render):
    objects = deployments(render("defaults"))
    order_env = env(app_container(objects["order-service"]))
    assert order_env["ORDERSAGA_APPROVAL_THRESHOLD"]["value"] == "1000"
    assert order_env["ORDERSAGA_APPROVAL_TIMEOUT_S"]["value"] == "86400"
    assert env(app_container(objects["payment-service"]))["ORDERSAGA_DEFAULT_CREDIT"]["value"] == "100000"
    for deployment in objects.values():
        assert env(app_container(deployment))["DAPR_HEALTH_TIMEOUT"]["value"] == "900"
    # A number given in a values file arrives as the string an env var must be.
    options = env(app_container(deployments(render("all-options"))["order-service"]))
    assert options["ORDERSAGA_ORDER_DEADLINE_S"]["value"] == "90000"
