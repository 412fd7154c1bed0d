"""The one generator: catalog + policy + chart values -> RayService and chart values fragment.

I/O lives here (reading the three files); the assembly is `rayservice.build_rayservice` and the
derivation `workers.derive_generated`, both pure. `orchestrator render`, the chart's committed
values (`orchestrator.deploy.sync`) and the tests all go through these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from orchestrator.catalog import Catalog
from orchestrator.config_files import (
    ConfigError,
    ConfigIssue,
    load_model_file,
    parse_yaml_text,
    validate_loaded,
)
from orchestrator.deploy import names
from orchestrator.deploy.rayservice import build_rayservice
from orchestrator.deploy.serve_args import TENANT_KEYS_DIR
from orchestrator.deploy.values import ChartValues, GeneratedValues
from orchestrator.deploy.workers import derive_generated


@dataclass(frozen=True)
class Inputs:
    """What the generator reads: the catalog (text + model), the policy text, the values."""

    catalog_text: str
    catalog: Catalog
    policy_text: str
    values: ChartValues
    warnings: list[str] = field(default_factory=list)
    min_replicas: dict[str, int] = field(default_factory=dict)  # the policy's effective minima

    @property
    def generated(self) -> GeneratedValues:
        return derive_generated(self.catalog, self.catalog_text, self.min_replicas)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(path), 1, "<file>", f"cannot read: {exc.strerror}")]
        ) from exc


def load_values(path: str | Path | None) -> ChartValues:
    """A chart values file (as for `helm install -f`), validated; None = the chart defaults."""
    if path is None:
        return ChartValues()
    return load_model_file(ChartValues, path)


def _policy_key_warnings(
    policy_path: Path, catalog: Catalog, values: ChartValues
) -> tuple[list[str], dict[str, int]]:
    """Validate the policy with the project's loader; return its warnings and key-reference
    mismatches, and its effective minimum replicas per profile."""
    from orchestrator.policy.loader import load_policy

    policy = load_policy(policy_path, catalog, resolve_secrets=False)
    mins = {name: b.min_replicas for name, b in policy.scaling.items()}
    refs = [ref for t in policy.spec.tenants for ref in t.api_keys]
    warnings: list[str] = [str(w) for w in policy.warnings]
    if refs and not values.tenantKeys.existingSecret:
        warnings.append(
            f"{policy_path}: the policy references {len(refs)} API key(s) "
            "but tenantKeys.existingSecret is empty: no key will resolve in the cluster"
        )
    for ref in refs:
        if ref.file is not None and not PurePosixPath(ref.file).is_relative_to(TENANT_KEYS_DIR):
            warnings.append(
                f"{policy_path}: key file {ref.file} is outside {TENANT_KEYS_DIR}, "
                "where the chart mounts tenantKeys.existingSecret"
            )
    return warnings, mins


def load_inputs(
    deployments: str | Path, policy: str | Path, values: str | Path | None = None
) -> Inputs:
    """Read and validate the catalog, the policy (against that catalog) and the values."""
    catalog_path, policy_path = Path(deployments), Path(policy)
    catalog_text = _read(catalog_path)
    catalog = validate_loaded(Catalog, parse_yaml_text(catalog_text, str(catalog_path)))
    chart_values = load_values(values)
    warnings, mins = _policy_key_warnings(policy_path, catalog, chart_values)
    content = chart_values.catalog.content
    if content and content != catalog_text:
        warnings.append(f"values catalog.content differs from {catalog_path}; rendering the latter")
    return Inputs(catalog_text, catalog, _read(policy_path), chart_values, warnings, mins)


def render_rayservice(
    inputs: Inputs, *, release: str = names.CHART_NAME, namespace: str | None = None
) -> dict[str, Any]:
    """The RayService the chart installs for these inputs (release name and namespace)."""
    return build_rayservice(inputs.values, inputs.generated, release=release, namespace=namespace)


def chart_values_fragment(inputs: Inputs) -> dict[str, Any]:
    """Values that make the chart ship this catalog and policy with matching worker groups."""
    return {
        "catalog": {"content": inputs.catalog_text},
        "policy": {"content": inputs.policy_text},
        "generated": inputs.generated.model_dump(mode="json"),
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so embedded files stay readable; no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    """YAML text in key order, multi-line strings as `|` blocks."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, width=100, allow_unicode=True)
