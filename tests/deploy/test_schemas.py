"""Every rendered object passes the schema the cluster would check it against: Kubernetes' own
(strict: unknown fields fail) or the Dapr CRD's (made strict the same way). And the validators
do reject broken objects, so these tests cannot pass by checking nothing."""

from __future__ import annotations

import pytest

from tests.deploy.chart import RENDERS, by_kind, is_dapr
from tests.deploy.schemas import Invalid, validate_kubernetes


@pytest.mark.parametrize("name", RENDERS)
def test_kubernetes_objects_match_the_kubernetes_schemas(render, name):
    objects = [obj for obj in render(name) if not is_dapr(obj)]
    assert {obj["kind"] for obj in objects} >= {"Deployment"}
    for obj in objects:
        validate_kubernetes(obj)


def _dapr(render, kind: str) -> dict:
    return next(obj for obj in render("defaults") if obj["kind"] == kind)


@pytest.mark.parametrize("name", RENDERS)
def test_dapr_objects_match_dapr_crds(render, crds, name):
    objects = [obj for obj in render(name) if is_dapr(obj)]
    assert {obj["kind"] for obj in objects} == {"Component", "Configuration", "Resiliency"}
    for obj in objects:
        crds.validate(obj)


def test_the_resiliency_as_written_matches_its_crd(render, crds):
    crds.validate(_dapr(render, "Resiliency"))


def test_the_crds_are_the_ones_dapr_installs(crds):
    assert {("dapr.io/v1alpha1", kind) for kind in ("Component", "Configuration", "Resiliency")} <= crds.kinds()


def _deployment(render) -> dict:
    return by_kind(render("defaults"), "Deployment")[0]


def _container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


KUBERNETES_BREAKAGES = {
    "unknown field": lambda d: _container(d).update(imagePullPolicyy="Always"),
    "wrong type": lambda d: d["spec"].update(replicas="two"),
    "missing required field": lambda d: _container(d).pop("name"),
    "unknown probe field": lambda d: _container(d)["livenessProbe"]["grpc"].update(service_name="x"),
}


@pytest.mark.parametrize("breakage", KUBERNETES_BREAKAGES)
def test_a_broken_deployment_is_rejected(render, breakage):
    deployment = _deployment(render)
    validate_kubernetes(deployment)  # valid before
    KUBERNETES_BREAKAGES[breakage](deployment)
    with pytest.raises(Invalid):
        validate_kubernetes(deployment)


def test_an_unknown_kind_is_rejected():
    with pytest.raises(Invalid, match="Deploymnet"):
        validate_kubernetes({"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}})


DAPR_BREAKAGES = {
    "misspelt spec field": ("Component", lambda c: c["spec"].update(metdata=c["spec"]["metadata"])),
    "missing version": ("Component", lambda c: c["spec"].pop("version")),
    "secretKeyRef without a name": ("Component", lambda c: c["spec"]["metadata"].append({
        "name": "password", "secretKeyRef": {"key": "PASSWORD"}})),
    "auth without a store": ("Component", lambda c: c.update(auth={})),
    "number where the CRD wants a string": ("Configuration", lambda c: c["spec"].update(
        tracing={"samplingRate": 0})),
    "unknown resiliency policy kind": ("Resiliency", lambda r: r["spec"]["policies"].update(breakers={})),
    "bad metadata": ("Resiliency", lambda r: r["metadata"].update(labels={"a": 1})),
    "unknown Dapr kind": ("Component", lambda c: c.update(kind="Componnet")),
}


@pytest.mark.parametrize("breakage", DAPR_BREAKAGES)
def test_a_broken_dapr_resource_is_rejected(render, crds, breakage):
    kind, breaks = DAPR_BREAKAGES[breakage]
    obj = _dapr(render, kind)
    crds.validate(obj)  # valid before
    breaks(obj)
    with pytest.raises(Invalid):
        crds.validate(obj)
