"""values.schema.json rejects bad values files with a clear message; render's model agrees."""

from __future__ import annotations

import json

import pytest

from orchestrator.config_files import ConfigError
from orchestrator.deploy import load_values
from orchestrator.deploy.helm_render import CHART_DIR


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"tag": 3}}, "at '/image/tag': got number, want string"),
        ({"cpuWorkers": {"maxReplicas": "two"}}, "at '/cpuWorkers/maxReplicas'"),
        ({"ledger": {"enabled": "yes"}}, "at '/ledger/enabled': got string, want boolean"),
        ({"service": {"type": "Ingress"}}, "at '/service/type'"),
        ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
        ({"gpuWorkers": {"memoryGB": 80}}, "additional properties 'memoryGB' not allowed"),
    ],
)
def test_schema_rejects_bad_values(helm, tmp_path, values, message) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(json.dumps(values))  # JSON is YAML
    values_doc = helm.values_from_yaml(bad.read_text())
    with helm.Chart.load(str(CHART_DIR)) as chart:
        with pytest.raises(helm.HelmValuesError) as info:
            chart.render(values_doc, name="orchestrator", namespace="orchestrator")
        assert message in str(info.value)
        with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications"):
            chart.render(values_doc, name="orchestrator")


def test_schema_accepts_every_example(helm) -> None:
    with helm.Chart.load(str(CHART_DIR)) as chart:
        for path in sorted((CHART_DIR / "examples").glob("*.yaml")):
            chart.validate_schema(helm.values_from_yaml(path.read_text()))


def test_render_names_file_line_and_field_of_a_bad_value(tmp_path) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text("image:\n  repository: x\n  tag: 3\nreplicaCount: 2\n")
    with pytest.raises(ConfigError) as info:
        load_values(bad)
    text = str(info.value)
    assert f"{bad}:3: image.tag: Input should be a valid string" in text
    assert f"{bad}:4: replicaCount: unknown field" in text


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, path
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "")
