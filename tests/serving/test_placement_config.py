"""Profile placement -> Ray placement constraints (label selectors, strategy, accelerator)."""

from __future__ import annotations

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.catalog.schema import NODE_TYPE_LABEL, Profile
from orchestrator.cluster.placement import replica_demand
from orchestrator.engines.config import llm_config_dict, serve_placement_options
from orchestrator.paths import PROJECT_ROOT
from orchestrator.serving.app import HEAD_NODE_RESOURCE, AppArgs, ingress_actor_options
from orchestrator.serving.storage_target import DATABASE_URL_ENV

LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
LABELS = {NODE_TYPE_LABEL: "cpu-b", "zone": "z1"}


def _pinned(profile: Profile, labels: dict[str, str] = LABELS) -> Profile:
    data = profile.model_dump(mode="json")
    return Profile.model_validate({**data, "placement": {"node_labels": labels}})


def _serve_options(profile: Profile) -> dict:
    """What ray.serve.llm hands to `serve.deployment` for the profile (Serve's own checks run)."""
    from ray.serve._private.config import ReplicaConfig
    from ray.serve.llm import LLMConfig, LLMServer

    config = LLMConfig.model_validate(llm_config_dict(profile, "/models/x"))
    engine = config.get_engine_config()
    actor = config.deployment_config.get("ray_actor_options", {})
    first = {"CPU": actor.get("num_cpus", 1), "GPU": actor.get("num_gpus", 0)}
    bundles = [dict(b) for b in engine.placement_bundles]
    for k, v in first.items():
        bundles[0][k] = bundles[0].get(k, 0) + v
    options = {
        "placement_group_bundles": bundles,
        "placement_group_strategy": engine.placement_strategy,
        **serve_placement_options(profile),
    }
    ReplicaConfig.create(
        LLMServer,
        ray_actor_options={"num_cpus": 0},
        placement_group_bundles=options["placement_group_bundles"],
        placement_group_strategy=options["placement_group_strategy"],
        placement_group_bundle_label_selector=options.get("placement_group_bundle_label_selector"),
    )
    return options


def test_unpinned_profile_has_no_label_selector_and_keeps_pack():
    p = LOCAL.profiles[0]
    assert serve_placement_options(p) == {}
    assert llm_config_dict(p, "/m")["placement_group_config"]["strategy"] == "PACK"


@pytest.mark.parametrize("profile", [LOCAL.profiles[0], GPU.profiles[0]], ids=["cpu", "gpu"])
def test_pinned_profile_selects_its_labels_on_every_bundle_of_one_node(profile):
    """Every bundle of a pinned replica carries the selector, on one node (STRICT_PACK, the
    only strategy Serve's scheduler takes bundle selectors with); Serve's ReplicaConfig
    accepts the combination; GPU bundles keep asking for the accelerator type."""
    options = _serve_options(_pinned(profile))
    assert options["placement_group_strategy"] == "STRICT_PACK"
    assert options["placement_group_bundle_label_selector"] == [LABELS]
    bundles = options["placement_group_bundles"]
    if profile.accelerator.is_gpu:
        assert len(bundles) == profile.accelerator.count
        key = f"accelerator_type:{profile.accelerator.type}"
        assert all(b.get(key, 0) > 0 and b["GPU"] == 1 for b in bundles)
    else:
        assert bundles == [{"CPU": profile.accelerator.cpus, "GPU": 0}]


def test_ingress_pinned_by_its_labels_else_to_the_head_with_a_sqlite_ledger(monkeypatch):
    """A SQLite ledger is a file on one node (the chart's volume is on the head): the ingress
    runs there unless labels pin it; with PostgreSQL it may run anywhere."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    sqlite = ingress_actor_options(AppArgs())
    assert "label_selector" not in sqlite
    assert sqlite["resources"] == {HEAD_NODE_RESOURCE: pytest.approx(0.001)}
    assert ingress_actor_options(AppArgs(ledger="/tmp/x.sqlite"))["resources"]
    shared = ingress_actor_options(AppArgs(ledger="postgresql://u@db:5432/o"))
    assert "resources" not in shared and "label_selector" not in shared
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://u@db:5432/o")
    assert "resources" not in ingress_actor_options(AppArgs())
    opts = ingress_actor_options(AppArgs(ingress_node_labels={NODE_TYPE_LABEL: "head"}))
    assert opts["label_selector"] == {NODE_TYPE_LABEL: "head"} and "resources" not in opts


def test_the_head_resource_is_rays():
    from ray._common.constants import HEAD_NODE_RESOURCE_NAME

    assert HEAD_NODE_RESOURCE == HEAD_NODE_RESOURCE_NAME


@pytest.mark.parametrize("profile", LOCAL.profiles + GPU.profiles, ids=lambda p: p.name)
def test_placement_report_counts_what_a_replica_reserves(profile):
    """`cluster.placement.replica_demand` (used to say "no node is large enough") is the sum of
    the bundles Ray Serve LLM reserves for one replica."""
    total: dict[str, float] = {}
    for bundle in _serve_options(profile)["placement_group_bundles"]:
        for k, v in bundle.items():
            total[k] = total.get(k, 0.0) + v
    demand = replica_demand(profile)
    assert {k: v for k, v in total.items() if v} == pytest.approx(demand)
