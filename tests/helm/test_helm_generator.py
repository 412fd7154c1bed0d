"""The generator's pure parts: worker groups from a catalog, names, values model, CLI."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.catalog import Catalog
from orchestrator.cli import main
from orchestrator.deploy import ChartValues, ServeAppArgs, catalog_sha256, derive_generated
from orchestrator.deploy.names import fullname
from orchestrator.deploy.workers import cpu_quantity, group_name
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, PROJECT_ROOT


def _profile(name: str, acc: dict, replicas: dict) -> dict:
    return {
        "name": name,
        "model": "m",
        "served_model_name": "fam",
        "max_model_len": 1024,
        "accelerator": acc,
        "price_per_replica_hour_usd": 1.0,
        "replicas": replicas,
        "performance": {
            "output_tokens_per_s": 100,
            "single_stream_tokens_per_s": 10,
            "prefill_tokens_per_s": 1000,
        },
    }


def test_one_group_per_gpu_type_sized_for_the_largest_replica() -> None:
    catalog = Catalog.model_validate(
        {
            "profiles": [
                _profile("a", {"type": "H100", "count": 1, "cpus": 8}, {"min": 1, "max": 3}),
                _profile(
                    "b",
                    {"type": "H100", "count": 2, "tensor_parallel_size": 2, "cpus": 12},
                    {"min": 0, "max": 2},
                ),
                _profile("c", {"type": "L4", "count": 1, "cpus": 4}, {"min": 2, "max": 2}),
                _profile("d", {"type": "cpu", "cpus": 0.5}, {"min": 1, "max": 1}),
            ]
        }
    )
    gen = derive_generated(catalog, "text")
    groups = {g.groupName: g for g in gen.gpuWorkerGroups}
    assert set(groups) == {"gpu-h100", "gpu-l4"}
    h100 = groups["gpu-h100"]
    assert h100.gpusPerPod == 2  # b needs 2 GPUs in one pod
    assert h100.cpusPerPod == "16"  # two replicas of a (8 CPUs each) share a 2-GPU pod
    assert (h100.minReplicas, h100.maxReplicas) == (1, 2 + 2)  # ceil(3/2) + 2 for a, b
    assert h100.profiles == ["a", "b"]
    assert (groups["gpu-l4"].minReplicas, groups["gpu-l4"].maxReplicas) == (2, 2)
    assert gen.cpuProfiles == ["d"]
    assert gen.catalogSha256 == catalog_sha256("text")


def test_cpu_only_catalog_has_no_gpu_group() -> None:
    from orchestrator.catalog import load_catalog

    gen = derive_generated(load_catalog(DEFAULT_DEPLOYMENTS), DEFAULT_DEPLOYMENTS.read_text())
    assert gen.gpuWorkerGroups == []
    assert gen.cpuProfiles == ["smollm2-cpu", "smollm2-cpu-ngram"]


@pytest.mark.parametrize(("value", "text"), [(8.0, "8"), (0.5, "0.5"), (2.25, "2.25"), (12, "12")])
def test_cpu_quantity(value, text) -> None:
    assert cpu_quantity(value) == text


def test_group_names_are_dns_labels() -> None:
    assert group_name("A100-80G") == "gpu-a100-80g"


@pytest.mark.parametrize(
    ("release", "values", "expected"),
    [
        ("orchestrator", {}, "orchestrator"),
        ("prod", {}, "prod-orchestrator"),
        ("my-orchestrator-1", {}, "my-orchestrator-1"),
        ("prod", {"fullnameOverride": "llm"}, "llm"),
        ("prod", {"nameOverride": "llm"}, "prod-llm"),
        ("x" * 70, {}, "x" * 63),
    ],
)
def test_fullname_follows_helm_rules(release, values, expected) -> None:
    assert fullname(release, ChartValues.model_validate(values)) == expected


def test_serve_args_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        ServeAppArgs.model_validate({"deployments": "a", "policy": "b", "replicas": 2})


def test_values_yaml_holds_exactly_the_model_defaults() -> None:
    from orchestrator.deploy.sync import default_values

    committed = yaml.safe_load((PROJECT_ROOT / "helm/orchestrator/values.yaml").read_text())
    assert committed == default_values().model_dump(mode="json")


def test_cli_render_prints_the_rayservice(capsys) -> None:
    assert main(["render", "--namespace", "ml"]) == 0
    obj = yaml.safe_load(capsys.readouterr().out)
    assert obj["kind"] == "RayService"
    assert obj["metadata"]["namespace"] == "ml"
    groups = [g["groupName"] for g in obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]]
    assert groups == ["cpu"]


def test_cli_render_chart_values_round_trip(capsys) -> None:
    gpu = PROJECT_ROOT / "deployments/gpu-example.yaml"
    premium = PROJECT_ROOT / "policies/examples/premium.yaml"
    argv = ["render", "--deployments", str(gpu), "--policy", str(premium), "--chart-values"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    fragment = yaml.safe_load(captured.out)
    assert fragment["catalog"]["content"] == gpu.read_text()
    assert fragment["policy"]["content"] == premium.read_text()
    assert [g["groupName"] for g in fragment["generated"]["gpuWorkerGroups"]] == [
        "gpu-b200",
        "gpu-h100",
        "gpu-h200",
        "gpu-l4",
        "gpu-l40s",
    ]
    # premium.yaml names API keys but no tenantKeys secret was given
    assert "tenantKeys.existingSecret is empty" in captured.err


def test_cli_render_reports_bad_inputs_with_file_and_line(tmp_path, capsys) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text(
        DEFAULT_DEPLOYMENTS.read_text().replace("max_model_len: 2048", "max_model_len: 2", 1)
    )
    assert main(["render", "--deployments", str(bad), "--policy", str(DEFAULT_POLICY)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "max_model_len" in err


def test_a_policy_lowering_minimum_replicas_lowers_the_minimum_pods(tmp_path, capsys) -> None:
    catalog = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: orchestrator/v1\nkind: Policy\nautoscaling:\n  profiles:\n"
        "    llama8b-bf16-eagle3: {min_replicas: 0}\n",
        encoding="utf-8",
    )

    def h100_min(policy_path) -> int:
        args = ["render", "--deployments", str(catalog), "--policy", str(policy_path)]
        assert main([*args, "--chart-values"]) == 0
        values = yaml.safe_load(capsys.readouterr().out)
        [h100] = [
            g for g in values["generated"]["gpuWorkerGroups"] if g["acceleratorType"] == "H100"
        ]
        return h100["minReplicas"]

    assert h100_min(PROJECT_ROOT / "policies" / "gpu-example.yaml") == 1  # the catalog's min 1
    assert h100_min(policy) == 0
