"""One naming scheme from catalog to chart: each profile's node type is a worker group whose
pods start Ray with the labels the profile's replicas are pinned to (`ray start --labels`)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from helm_checks import example_values, one

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.catalog.schema import NODE_TYPE_LABEL
from orchestrator.deploy import derive_generated
from orchestrator.deploy.values import DEFAULT_GPU_NODE_SELECTORS
from orchestrator.deploy.workers import node_type, ray_labels
from orchestrator.paths import DEFAULT_DEPLOYMENTS, PROJECT_ROOT


def _groups(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Node type -> (labels its pods advertise, nodeSelector), head included."""
    cluster = one(objs, "RayService")["spec"]["rayClusterConfig"]
    specs = [{"groupName": "head", **cluster["headGroupSpec"]}, *cluster["workerGroupSpecs"]]
    out = {}
    for g in specs:
        pairs = g["rayStartParams"]["labels"].split(",")
        labels = dict(p.split("=", 1) for p in pairs)
        selector = g["template"]["spec"].get("nodeSelector", {})
        out[g["groupName"]] = {"labels": labels, "nodeSelector": selector}
    return out


def _assert_every_profile_has_its_group(catalog: Catalog, groups: dict[str, Any]) -> None:
    for name, group in groups.items():
        assert group["labels"][NODE_TYPE_LABEL] == name  # the label names the group
    for p in catalog.profiles:
        group = groups[node_type(p)]
        assert p.placement.node_labels.items() <= group["labels"].items(), p.name
        if p.accelerator.is_gpu:
            assert group["nodeSelector"] == DEFAULT_GPU_NODE_SELECTORS[p.accelerator.type]


def test_shipped_examples_advertise_every_profiles_node_type(render, example) -> None:
    catalog = load_catalog(PROJECT_ROOT / (example.deployments or DEFAULT_DEPLOYMENTS))
    groups = _groups(render(example_values(example), namespace=example.namespace))
    assert set(groups) >= {"head", "cpu"}
    _assert_every_profile_has_its_group(catalog, groups)


def _catalog(profiles: list[tuple[str, str, dict[str, str]]]) -> Catalog:
    return Catalog.model_validate(
        {
            "profiles": [
                {
                    "name": name,
                    "model": "m",
                    "served_model_name": "fam",
                    "max_model_len": 1024,
                    "accelerator": {"type": acc, "count": 1, "cpus": 4}
                    if acc != "cpu"
                    else {"type": "cpu", "cpus": 1},
                    "placement": {"node_labels": labels},
                    "price_per_replica_hour_usd": 1.0,
                    "performance": {
                        "output_tokens_per_s": 100,
                        "single_stream_tokens_per_s": 10,
                        "prefill_tokens_per_s": 1000,
                    },
                }
                for name, acc, labels in profiles
            ]
        }
    )


def test_pinned_profiles_get_a_group_of_their_node_type_with_their_labels(render) -> None:
    catalog = _catalog(
        [
            ("spot", "H100", {NODE_TYPE_LABEL: "h100-spot", "market": "spot"}),
            ("ondemand", "H100", {}),
            ("cheap", "L4", {"zone": "eu-1"}),
            ("small", "cpu", {"tier": "dev"}),
        ]
    )
    text = yaml.safe_dump(catalog.model_dump(mode="json", exclude_defaults=True))
    generated = derive_generated(catalog, text)
    values = {"catalog": {"content": text}, "generated": generated.model_dump(mode="json")}
    groups = _groups(render(values))
    assert set(groups) == {"head", "cpu", "h100-spot", "gpu-h100", "gpu-l4"}
    assert groups["h100-spot"]["labels"] == {NODE_TYPE_LABEL: "h100-spot", "market": "spot"}
    assert groups["gpu-l4"]["labels"] == {NODE_TYPE_LABEL: "gpu-l4", "zone": "eu-1"}
    assert groups["cpu"]["labels"] == {NODE_TYPE_LABEL: "cpu", "tier": "dev"}
    _assert_every_profile_has_its_group(catalog, groups)


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        (
            [("a", "L4", {"zone": "a"}), ("b", "L4", {"zone": "b"})],
            "profile 'b' needs label zone=b",
        ),
        (
            [("a", "L4", {NODE_TYPE_LABEL: "mixed"}), ("b", "H100", {NODE_TYPE_LABEL: "mixed"})],
            "mixes accelerator types",
        ),
        ([("a", "cpu", {NODE_TYPE_LABEL: "cpu-big"})], "has no group"),
        ([("a", "L4", {NODE_TYPE_LABEL: "cpu"})], "has no GPUs"),
    ],
    ids=["label-conflict", "mixed-accelerators", "cpu-node-type", "gpu-on-cpu-group"],
)
def test_catalogs_the_chart_cannot_host_are_refused(profiles, message) -> None:
    with pytest.raises(ValueError, match=message):
        derive_generated(_catalog(profiles), "text")


def test_ray_labels_string_is_sorted_pairs() -> None:
    assert ray_labels({"b": "2", "a": "1"}) == "a=1,b=2"
