"""Validate rendered objects without a cluster, as strictly as an API server would.

Kubernetes objects go to the JSON schemas shipped in the `kubernetes-validate` wheel, in its
strict flavour (unknown fields fail, as `kubectl apply --validate=strict` does). Dapr objects go to
the `openAPIV3Schema` of Dapr's own CRDs (charts/dapr/crds in the dapr module), made strict the
same way: a CRD's structural schema drops unknown fields silently, so a misspelt field would
otherwise pass here and be ignored in the cluster.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

# The oldest version the chart allows (Chart.yaml kubeVersion, native gRPC probes) and the newest
# the wheel knows: an object valid on both uses no field that was added or removed in between.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class Invalid(Exception):
    """An object the cluster would refuse; the message names the object and the field."""


def validate_kubernetes(obj: dict) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise Invalid(f"{_name(obj)} on Kubernetes {version}: {_where(error)}: {error.message}") from None
        except kubernetes_validate.SchemaNotFoundError as error:
            raise Invalid(f"{_name(obj)}: {error.message}") from None


class CrdValidator:
    """Validates objects of the kinds the given CRD files define (one CRD per file)."""

    def __init__(self, crd_files: list[Path]):
        self._schemas: dict[tuple[str, str], dict] = {}
        for path in crd_files:
            crd = yaml.safe_load(path.read_text())
            for version in crd["spec"]["versions"]:
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # The CRD says only `type: object` for metadata; the API server checks ObjectMeta.
                schema["properties"]["metadata"] = {"$ref": f"{_definitions_id()}#/$defs/{_OBJECT_META}"}
                self._schemas[(api_version, crd["spec"]["names"]["kind"])] = schema
        self._registry = Resource.from_contents(_definitions()) @ Registry()

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._schemas)

    def validate(self, obj: dict) -> None:
        schema = self._schemas.get((obj.get("apiVersion"), obj.get("kind")))
        if schema is None:
            raise Invalid(f"{_name(obj)}: no CRD defines {obj.get('apiVersion')} {obj.get('kind')}")
        validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
        error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
        if error is not None:
            raise Invalid(f"{_name(obj)}: {_where(error)}: {error.message}")


def _strict(schema: dict) -> dict:
    """Forbid unknown fields wherever the CRD lists the known ones (and does not keep unknown ones)."""
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema["additionalProperties"] = False
    for sub in schema.get("properties", {}).values():
        _strict(sub)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _strict(sub)
    return schema


@functools.cache
def _definitions() -> dict:
    version = KUBERNETES_VERSIONS[-1]
    return schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)


def _definitions_id() -> str:
    return _definitions()["$id"]


def _name(obj: dict) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"
