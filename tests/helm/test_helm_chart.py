"""The chart, rendered with the Helm SDK: lint, strict validation of every kind, and the same
RayService as `orchestrator render`."""

from __future__ import annotations

import json

import pytest
import yaml
from helm_checks import by_kind, example_values, one, validate_all, validate_rayservice

from orchestrator.deploy import load_inputs, render_rayservice
from orchestrator.deploy.helm_render import CHART_DIR, lint_chart, render_notes
from orchestrator.deploy.names import HELM_ONLY_LABELS
from orchestrator.deploy.sync import Example
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, PROJECT_ROOT


def _inputs_for(example: Example | None):
    """The catalog/policy/values a chart render used, as `orchestrator render` takes them."""
    if example is None:
        return load_inputs(DEFAULT_DEPLOYMENTS, DEFAULT_POLICY, None)
    deployments = PROJECT_ROOT / (example.deployments or "deployments/local.yaml")
    policy = PROJECT_ROOT / (example.policy or "policies/default.yaml")
    return load_inputs(deployments, policy, example.path)


def _without_helm_labels(obj: dict) -> dict:
    out = json.loads(json.dumps(obj))
    for label in HELM_ONLY_LABELS:
        assert label in out["metadata"]["labels"]
        del out["metadata"]["labels"][label]
    return out


def _comparable(rs: dict) -> dict:
    """serveConfigV2 is YAML text: compare it parsed."""
    out = json.loads(json.dumps(rs))
    out["spec"]["serveConfigV2"] = yaml.safe_load(out["spec"]["serveConfigV2"])
    return out


def test_lint_strict_is_clean(helm) -> None:
    report = lint_chart(None)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_strict_is_clean_for_each_example(helm, example) -> None:
    report = lint_chart(example_values(example))
    assert report["errors"] == [], report


def test_defaults_render_and_validate(render) -> None:
    objs = render()
    kinds = validate_all(objs)
    assert kinds == {
        "RayService", "ConfigMap", "Service", "ServiceAccount", "Role", "RoleBinding",
        "PersistentVolumeClaim", "NetworkPolicy",
    }  # fmt: skip
    # monitoring objects are opt-in
    assert not by_kind(objs, "ServiceMonitor") and not by_kind(objs, "PrometheusRule")


def test_example_renders_and_validates(render, example) -> None:
    objs = render(example_values(example), namespace=example.namespace)
    kinds = validate_all(objs)
    assert "RayService" in kinds
    assert all(o["metadata"]["namespace"] == example.namespace for o in objs)


def test_gpu_prod_has_one_worker_group_per_accelerator_type(render) -> None:
    from orchestrator.catalog import load_catalog

    values = yaml.safe_load((CHART_DIR / "examples" / "gpu-prod.yaml").read_text())
    rs = one(render(values), "RayService")
    groups = {g["groupName"]: g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    types = {p.accelerator.type for p in catalog.profiles}
    assert set(groups) == {"cpu"} | {f"gpu-{t.lower()}" for t in types}
    h200 = groups["gpu-h200"]["template"]["spec"]
    limits = h200["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 4  # qwen3-235b runs tensor-parallel over 4 GPUs
    assert h200["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in h200[
        "tolerations"
    ]
    assert "nvidia.com/gpu" not in str(groups["cpu"]["template"])


@pytest.mark.parametrize("release", ["orchestrator", "prod"])
def test_chart_and_render_emit_the_same_rayservice_defaults(render, release) -> None:
    chart = one(render(None, release=release, namespace="team-a"), "RayService")
    ours = render_rayservice(_inputs_for(None), release=release, namespace="team-a")
    assert _comparable(_without_helm_labels(chart)) == _comparable(ours)


def test_chart_and_render_emit_the_same_rayservice_examples(render, example) -> None:
    chart = one(render(example_values(example), namespace=example.namespace), "RayService")
    ours = render_rayservice(_inputs_for(example), namespace=example.namespace)
    assert _comparable(_without_helm_labels(chart)) == _comparable(ours)
    validate_rayservice(ours)


def test_policy_is_mounted_as_a_directory_for_hot_reload(render) -> None:
    rs = one(render(), "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["policy"]["mountPath"] == "/etc/orchestrator/policy"
        assert all("subPath" not in m for m in container["volumeMounts"])
    cms = {c["metadata"]["name"]: c for c in by_kind(render(), "ConfigMap")}
    assert cms["orchestrator-policy"]["data"]["policy.yaml"] == DEFAULT_POLICY.read_text()
    assert cms["orchestrator-catalog"]["data"]["catalog.yaml"] == DEFAULT_DEPLOYMENTS.read_text()


def test_pods_are_non_root_with_read_only_root_fs(render, example) -> None:
    rs = one(render(example_values(example), namespace=example.namespace), "RayService")
    cluster = rs["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        spec = group["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert {"/tmp", "/dev/shm", "/home/ray/.cache"} <= writable


def test_ledger_pvc_is_mounted_on_the_head_only(render) -> None:
    objs = render()
    pvc = one(objs, "PersistentVolumeClaim")
    cluster = one(objs, "RayService")["spec"]["rayClusterConfig"]
    head_vols = {v["name"]: v for v in cluster["headGroupSpec"]["template"]["spec"]["volumes"]}
    assert head_vols["state"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    for group in cluster["workerGroupSpecs"]:
        vols = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
        assert vols["state"] == {"name": "state", "emptyDir": {}}


def test_tenant_key_secret_feeds_env_and_files(render) -> None:
    values = yaml.safe_load((CHART_DIR / "examples" / "gpu-prod.yaml").read_text())
    rs = one(render(values), "RayService")
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (container,) = head["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "orchestrator-tenant-keys"}}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["tenant-keys"] == "/var/run/secrets/orchestrator"
    # premium.yaml's file refs point inside that mount
    policy = yaml.safe_load((PROJECT_ROOT / "policies/examples/premium.yaml").read_text())
    files = [k["file"] for t in policy["tenants"] for k in t["api_keys"] if "file" in k]
    assert files and all(f.startswith("/var/run/secrets/orchestrator/") for f in files)


def test_rbac_reads_configmaps_and_creates_events(render) -> None:
    role = one(render(), "Role")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules[(("",), ("configmaps",))] == {"get", "list", "watch"}
    assert "create" in rules[(("",), ("events",))]
    assert all("secrets" not in r["resources"] for r in role["rules"])


def test_service_targets_the_serve_port(render) -> None:
    services = {s["metadata"]["name"]: s for s in by_kind(render(), "Service")}
    api = services["orchestrator"]["spec"]
    assert api["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "serve", "protocol": "TCP"}
    ]
    assert api["selector"]["ray.io/serve"] == "true"


def test_monitoring_objects_when_enabled(render) -> None:
    values = {
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True},
        }
    }
    objs = render(values)
    validate_all(objs)
    rule = one(objs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "OrchestratorBudgetNearlySpent",
        "OrchestratorBudgetBurnRateHigh",
        "OrchestratorSLOBreach",
    }
    summaries = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all("{{ $labels.tenant }}" in s for s in summaries)  # left for Prometheus to fill
    dashboard = next(
        c for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["orchestrator.json"])["uid"] == "orchestrator"


def test_dashboard_placeholder_is_valid_grafana_json() -> None:
    board = json.loads((CHART_DIR / "dashboards" / "orchestrator.json").read_text())
    assert isinstance(board["title"], str) and board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert isinstance(board["panels"], list)


def test_existing_configmaps_are_used_instead(render) -> None:
    values = {
        "catalog": {"existingConfigMap": "my-catalog", "key": "local.yaml"},
        "policy": {"existingConfigMap": "my-policy"},
    }
    objs = render(values)
    assert by_kind(objs, "ConfigMap") == []
    head = one(objs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    vols = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert vols["catalog"]["configMap"] == {
        "name": "my-catalog",
        "items": [{"key": "local.yaml", "path": "catalog.yaml"}],
    }
    assert vols["policy"]["configMap"]["name"] == "my-policy"


def test_catalog_change_without_regenerating_is_refused(helm, render) -> None:
    edited = DEFAULT_DEPLOYMENTS.read_text().replace("max: 1}", "max: 3}")
    assert edited != DEFAULT_DEPLOYMENTS.read_text()
    with pytest.raises(helm.HelmRenderError, match="orchestrator render"):
        render({"catalog": {"content": edited}})


def test_catalog_change_with_regenerated_values_renders(render, tmp_path) -> None:
    from orchestrator.deploy import chart_values_fragment

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(DEFAULT_DEPLOYMENTS.read_text().replace("max: 1}", "max: 3}"))
    fragment = chart_values_fragment(load_inputs(catalog, DEFAULT_POLICY))
    rs = one(render(fragment), "RayService")
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    sha = head["metadata"]["annotations"]["orchestrator.io/catalog-sha256"]
    assert sha == fragment["generated"]["catalogSha256"]


def test_notes_tell_how_to_reach_the_endpoint_and_edit_the_policy(helm) -> None:
    notes = render_notes(None)
    assert "port-forward svc/orchestrator" in notes
    assert "edit configmap orchestrator-policy" in notes
    assert "smollm2-cpu-ngram" in notes
