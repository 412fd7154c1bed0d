"""CPU engines sharing one node: disjoint cores, Ray's count to match, capacity as a share."""

from __future__ import annotations

from pathlib import Path

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.cluster.node_cores import core_split, share_node_cores
from orchestrator.engines.config import llm_config_dict, replica_env
from orchestrator.replica_model import aggregate_tokens_per_s, performance_of

ROOT = Path(__file__).resolve().parents[2]
LOCAL = load_catalog(ROOT / "deployments" / "local.yaml")


def _with(catalog: Catalog, name: str, **update) -> Catalog:
    profiles = []
    for p in catalog.profiles:
        if p.name == name:
            data = p.model_dump(mode="json", exclude_none=True)
            data.update(update)
            p = type(p).model_validate(data)
        profiles.append(p)
    return catalog.model_copy(update={"profiles": profiles})


def test_default_catalog_on_two_cores_gets_one_core_each():
    shared = share_node_cores(LOCAL, 2)
    binds = [replica_env(p)["VLLM_CPU_OMP_THREADS_BIND"] for p in shared.profiles]
    assert binds == ["0", "1"]
    for p in shared.profiles:
        assert replica_env(p)["OMP_NUM_THREADS"] == "1"
        # Ray reserves exactly the bound cores for the replica
        assert llm_config_dict(p, "/m")["placement_group_config"]["bundles"] == [{"CPU": 1.0}]


def test_node_capacity_is_shared_not_added():
    shared = share_node_cores(LOCAL, 2)
    full = sum(aggregate_tokens_per_s(performance_of(p), 8) for p in LOCAL.profiles)
    split = sum(aggregate_tokens_per_s(performance_of(p), 8) for p in shared.profiles)
    assert split == full / 2  # two engines on two cores: one 2-core engine's worth, not two


def test_enough_cores_give_each_engine_what_it_was_measured_with():
    shared = share_node_cores(LOCAL, 8)
    assert [replica_env(p)["VLLM_CPU_OMP_THREADS_BIND"] for p in shared.profiles] == [
        "0-1",
        "2-3",
    ]
    assert [p.performance for p in shared.profiles] == [p.performance for p in LOCAL.profiles]


def test_left_alone_when_binding_cannot_be_disjoint_or_is_the_catalogs():
    assert share_node_cores(LOCAL, 1) == LOCAL  # more engines than cores
    one = LOCAL.model_copy(update={"profiles": LOCAL.profiles[:1]})
    assert share_node_cores(one, 2) == one  # a lone engine keeps all its threads
    scaled = _with(LOCAL, "smollm2-cpu", replicas={"min": 1, "max": 2})
    assert share_node_cores(scaled, 2) == scaled  # its replicas would share one binding
    own = _with(LOCAL, "smollm2-cpu", env={"VLLM_CPU_OMP_THREADS_BIND": "0-1"})
    assert share_node_cores(own, 2) == own


def test_stub_engines_take_no_cores():
    stub = load_catalog(ROOT / "deployments" / "stub.yaml")
    both = LOCAL.model_copy(update={"profiles": [*LOCAL.profiles, *stub.profiles]})
    shared = share_node_cores(both, 2)
    assert shared.profile("stub") == stub.profiles[0]
    assert replica_env(shared.profile("smollm2-cpu-ngram"))["VLLM_CPU_OMP_THREADS_BIND"] == "1"


def test_core_split():
    assert core_split([2, 2], 4) == [2, 2]
    assert core_split([2, 2], 3) == [2, 1]
    assert core_split([4, 1, 1], 4) == [2, 1, 1]
    assert core_split([1, 1, 1], 2) is None


def test_build_app_on_one_node_runs_the_shared_catalog(tmp_path, monkeypatch):
    from orchestrator.serving import app as app_module
    from orchestrator.serving.app import build_app

    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    # Ray Serve LLM's deployment builder calls ray.init(), which would start a cluster here, or
    # hang on a stale /tmp/ray/ray_current_cluster: the catalog file is what this test reads
    monkeypatch.setattr(app_module, "build_profile_deployments", lambda *args, **kwargs: {})
    build_app({"node_cpus": 2, "state_dir": str(tmp_path), "ledger": str(tmp_path / "u.db")})
    node = load_catalog(tmp_path / "catalog.this-node.yaml")  # what the controller reads
    assert node == share_node_cores(LOCAL, 2)
    build_app({"state_dir": str(tmp_path / "joined"), "ledger": str(tmp_path / "u.db")})
    assert not (tmp_path / "joined" / "catalog.this-node.yaml").exists()
