"""k8s/: `kubectl kustomize` of each overlay validates like the chart, and equals the chart
rendered with that overlay's example values (the overlays are generated from the chart)."""

from __future__ import annotations

from helm_checks import canonical, example_values, one, validate_all, validate_rayservice

from orchestrator.deploy.sync import K8S_DIR, for_kustomize


def key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_base_builds_and_validates(kustomize) -> None:
    objs = kustomize(str(K8S_DIR / "base"))
    kinds = validate_all(objs)
    assert "RayService" in kinds
    assert all("namespace" not in o["metadata"] for o in objs)


def test_overlay_builds_and_validates(kustomize, example) -> None:
    objs = kustomize(str(K8S_DIR / "overlays" / example.name))
    validate_all(objs)
    validate_rayservice(one(objs, "RayService"))
    assert {o["metadata"]["namespace"] for o in objs} == {example.namespace}


def test_overlay_equals_the_chart_with_the_example_values(kustomize, render, example) -> None:
    built = kustomize(str(K8S_DIR / "overlays" / example.name))
    chart = render(example_values(example), namespace=example.namespace)
    expected = []
    for obj in chart:
        obj = for_kustomize(obj)
        obj["metadata"]["namespace"] = example.namespace
        expected.append(obj)
    assert sorted(map(key, built)) == sorted(map(key, expected))
    by_key = {key(o): o for o in expected}
    for obj in built:
        assert canonical(obj) == canonical(by_key[key(obj)]), key(obj)
