"""Catalog schema: the shipped catalogs load; bad files are rejected with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.config_files import ConfigError
from orchestrator.paths import PROJECT_ROOT

CATALOGS = sorted((PROJECT_ROOT / "deployments").glob("*.yaml"))

GOOD_PROFILE = """\
apiVersion: orchestrator/v1
kind: Catalog
profiles:
  - name: p1
    model: /models/x
    served_model_name: fam
    max_model_len: 4096
    price_per_replica_hour_usd: 1.0
    performance:
      output_tokens_per_s: 100
      single_stream_tokens_per_s: 20
      prefill_tokens_per_s: 1000
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "catalog.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.name)
def test_shipped_catalogs_load(path):
    catalog = load_catalog(path)
    assert catalog.profiles
    assert len({p.name for p in catalog.profiles}) == len(catalog.profiles)


def test_local_catalog_offers_a_real_choice_within_one_family():
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
    assert len(catalog.profiles) >= 2
    assert len(catalog.families) == 1
    assert all(p.accelerator.type == "cpu" for p in catalog.profiles)
    assert sum(p.accelerator.cpus for p in catalog.profiles) <= 1.5  # leaves room on 2 cores


def test_good_minimal_profile_gets_defaults(tmp_path):
    catalog = load_catalog(_write(tmp_path, GOOD_PROFILE))
    p = catalog.profiles[0]
    assert p.dtype == "auto" and p.quantization == "none" and p.speculative is None
    assert p.replicas.min == 1 and p.accelerator.type == "cpu"


@pytest.mark.parametrize(
    ("mutation", "line", "field", "reason"),
    [
        (
            ("    max_model_len: 4096", "    max_model_len: -1"),
            7,
            "profiles[0].max_model_len",
            "greater than or equal",
        ),
        (
            ("    served_model_name: fam", "    served_model_name: fam\n    colour: red"),
            7,
            "profiles[0].colour",
            "unknown field",
        ),
        (
            ("    model: /models/x", "    model: /models/x\n    quantization: int3"),
            6,
            "profiles[0].quantization",
            "Input should be",
        ),
        (("  - name: p1", "  - name: P_1"), 4, "profiles[0].name", "pattern"),
        (
            ("    price_per_replica_hour_usd: 1.0", "    price_per_replica_hour_usd: cheap"),
            8,
            "profiles[0].price_per_replica_hour_usd",
            "valid number",
        ),
        (
            (
                "    max_model_len: 4096",
                "    max_model_len: 4096\n    speculative: {method: eagle3}",
            ),
            8,
            "profiles[0].speculative",
            "drafter",
        ),
        (
            ("    max_model_len: 4096", "    max_model_len: 4096\n    replicas: {min: 3, max: 2}"),
            8,
            "profiles[0].replicas",
            "min must be <= max",
        ),
        (
            ("    max_model_len: 4096", "    max_model_len: 4096\n    engine_args: {dtype: half}"),
            8,
            "profiles[0].engine_args",
            "profile fields",
        ),
    ],
)
def test_bad_catalog_names_file_line_field_and_reason(tmp_path, mutation, line, field, reason):
    old, new = mutation
    path = _write(tmp_path, GOOD_PROFILE.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    issue = err.value.issues[0]
    assert issue.file == str(path)
    assert issue.field == field
    assert issue.line == line
    assert reason in issue.reason
    assert str(issue).startswith(f"{path}:{line}: {field}: ")


def test_duplicate_profile_names_rejected(tmp_path):
    text = GOOD_PROFILE + GOOD_PROFILE.split("profiles:\n", 1)[1]
    with pytest.raises(ConfigError, match="duplicate profile name 'p1'"):
        load_catalog(_write(tmp_path, text))


def test_yaml_syntax_error_has_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_catalog(_write(tmp_path, GOOD_PROFILE + "  - name: [unclosed\n"))
    assert err.value.issues[0].line in (13, 14)  # where the parser noticed: the flow or its end
    assert "invalid YAML" in err.value.issues[0].reason


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path / "nope.yaml")


def test_placement_node_labels_are_checked_like_ray_does(tmp_path):
    """Valid Kubernetes-style labels pass (and Ray's own validator agrees); Ray's reserved
    `ray.io/` keys and malformed keys or values are refused with the field named."""
    from ray._private.label_utils import validate_node_label_syntax

    good = {"orchestrator.io/node-type": "cpu-large", "zone": "eu_1.a", "x": ""}
    text = GOOD_PROFILE + "    placement:\n      node_labels:\n"
    catalog = load_catalog(
        _write(tmp_path, text + "".join(f'        {k}: "{v}"\n' for k, v in good.items()))
    )
    placement = catalog.profiles[0].placement
    assert placement.node_labels == good and placement.node_type == "cpu-large"
    validate_node_label_syntax(good)  # raises on what Ray would refuse at `ray start --labels`
    assert load_catalog(_write(tmp_path, GOOD_PROFILE)).profiles[0].placement.node_type is None
    for key, value in [("ray.io/node-type", "a"), ("bad key", "a"), ("k", "-a"), ("k", "a" * 64)]:
        path = _write(tmp_path, text + f'        "{key}": "{value}"\n')
        with pytest.raises(ConfigError) as err:
            load_catalog(path)
        assert "node_labels" in str(err.value), str(err.value)
