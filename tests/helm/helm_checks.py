"""Validation helpers for tests/helm: built-in kinds (kubernetes-validate, strict) and KubeRay
kinds (the CRDs' openAPIV3Schema, made strict: a field the API server would prune is an error).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).parent / "crds"  # vendored from KubeRay (see crds/README.md)
CRD_FILES = {"RayService": "ray.io_rayservices.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
# The chart's kubeVersion floor and the newest schema kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", "latest")
PROMETHEUS_KINDS = {"ServiceMonitor", "PrometheusRule"}


def _strict(schema: Any) -> Any:
    """Close every object schema that lists properties and does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """Strict openAPIV3Schema of the served storage version (ray.io/v1) of a KubeRay kind."""
    path = CRD_DIR / CRD_FILES[kind]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def validate_crd(obj: dict[str, Any], kind: str | None = None) -> None:
    """Raise jsonschema.ValidationError when `obj` breaks the (strict) KubeRay CRD schema."""
    kind = kind or obj["kind"]
    jsonschema.Draft7Validator(crd_schema(kind)).validate(obj)


def validate_rayservice(obj: dict[str, Any]) -> None:
    """The RayService, its RayCluster part, and each pod template as a built-in PodTemplate."""
    assert obj["apiVersion"] == "ray.io/v1"
    validate_crd(obj, "RayService")
    cluster = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": obj["spec"]["rayClusterConfig"],
    }
    validate_crd(cluster, "RayCluster")
    spec = obj["spec"]["rayClusterConfig"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "check"},
            "template": group["template"],
        }
        validate_builtin(pod_template)


def validate_builtin(obj: dict[str, Any]) -> None:
    """Strict kubernetes-validate of a built-in kind, for each version in K8S_VERSIONS."""
    import kubernetes_validate as kv  # a dev dependency: missing it fails, never skips

    for version in K8S_VERSIONS:
        v = kv.utils.latest_version() if version == "latest" else version
        kv.validate(obj, v, strict=True)


def validate_all(objs: list[dict[str, Any]]) -> set[str]:
    """Validate every object by its kind; return the kinds seen."""
    kinds = {obj["kind"] for obj in objs}
    # built-in kinds first: the CRD check skips the test when shared/crds is absent
    for obj in objs:
        if obj["kind"] in PROMETHEUS_KINDS:
            validate_prometheus_kind(obj)
        elif obj["kind"] != "RayService":
            validate_builtin(obj)
    for obj in objs:
        if obj["kind"] == "RayService":
            validate_rayservice(obj)
    return kinds


def validate_prometheus_kind(obj: dict[str, Any]) -> None:
    """No prometheus-operator CRD is shipped here: check the shape the operator reads."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    spec = obj["spec"]
    if obj["kind"] == "ServiceMonitor":
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval"}, endpoint
    else:
        for group in spec["groups"]:
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
                assert rule["alert"] and rule["expr"].strip()


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def example_values(example: Any) -> dict[str, Any]:
    """An example's values as `helm install -f` reads them."""
    return yaml.safe_load(example.path.read_text(encoding="utf-8")) or {}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
