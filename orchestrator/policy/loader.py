"""Load a policy file: parse (with lines), validate the schema, cross-check the catalog,
resolve API keys, and build an immutable `Policy`. Every problem is a located ConfigIssue;
all of them are raised together in one ConfigError.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.config_files import (
    ConfigError,
    ConfigIssue,
    LoadedYaml,
    parse_yaml_text,
    validate_loaded,
)
from orchestrator.paths import DEFAULT_DEPLOYMENTS, DEFAULT_POLICY
from orchestrator.policy.checks import PolicyDraft, check_policy, policy_warnings
from orchestrator.policy.model import Policy
from orchestrator.policy.resolve import resolve_tenants, scaling_bounds
from orchestrator.policy.schema import PolicySpec
from orchestrator.policy.secrets import resolve_keys
from orchestrator.pricing import token_prices


def content_version(text: str) -> str:
    """Short content hash identifying a policy version."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_policy(
    spec: PolicySpec,
    catalog: Catalog,
    loaded: LoadedYaml,
    *,
    version: str,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Cross-check `spec` against `catalog`, resolve keys, and build the Policy."""
    scaling = scaling_bounds(spec, catalog)
    resolved = resolve_tenants(spec, catalog, scaling)
    reachable = [rt.tenant.name for rt in resolved if not rt.tenant.is_default]
    if not reachable or spec.unknown_keys == "default_tenant":
        reachable.insert(0, spec.default_tenant.name)
    draft = PolicyDraft(spec, catalog, loaded, scaling, resolved, reachable)
    issues = check_policy(draft)
    index: dict[str, str] = {}
    files: tuple[str, ...] = ()
    if resolve_secrets:
        keys = resolve_keys(spec, loaded, os.environ if env is None else env)
        said = {(i.line, i.field) for i in issues}  # a source named twice: reported once
        issues += [i for i in keys.issues if (i.line, i.field) not in said]
        index, files = keys.index, keys.files
    if issues:
        raise ConfigError(issues)
    tenants = {rt.tenant.name: rt.tenant for rt in resolved}
    return Policy(
        spec=spec,
        catalog=catalog,
        tenants=tenants,
        default_tenant=tenants[spec.default_tenant.name],
        prices={p.name: token_prices(p, spec) for p in catalog.profiles},
        scaling=scaling,
        version=version,
        source=loaded.file,
        secrets_resolved=resolve_secrets,
        key_files=files,
        warnings=tuple(policy_warnings(draft)),
        _key_index=index,
    )


def load_policy_text(
    text: str,
    file: str,
    catalog: Catalog,
    *,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Load a policy from its text (`file` names it in errors and anchors relative paths)."""
    loaded = parse_yaml_text(text, file)
    spec = validate_loaded(PolicySpec, loaded)
    return build_policy(
        spec,
        catalog,
        loaded,
        version=content_version(text),
        resolve_secrets=resolve_secrets,
        env=env,
    )


def load_policy(
    path: str | Path,
    catalog: Catalog,
    *,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Load and fully validate a policy file against `catalog` (ConfigError on any problem).

    resolve_secrets=False checks structure only: key references are not read, and
    `resolve_tenant` refuses to authenticate with the result.
    """
    text = _read_text(Path(path))
    return load_policy_text(text, str(path), catalog, resolve_secrets=resolve_secrets, env=env)


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        issue = ConfigIssue(str(p), 1, "<file>", f"cannot read: {exc.strerror}")
        raise ConfigError([issue]) from exc


def read_policy(path: str | Path) -> tuple[str, LoadedYaml, PolicySpec]:
    """Read, parse and schema-validate a policy file without a catalog (ConfigError on
    problems); returns the text (for the version), the parsed YAML and the spec."""
    text = _read_text(Path(path))
    loaded = parse_yaml_text(text, str(path))
    return text, loaded, validate_loaded(PolicySpec, loaded)


def read_policy_spec(path: str | Path) -> PolicySpec:
    """Schema-validate a policy file without a catalog (ConfigError on problems)."""
    return read_policy(path)[2]


def catalog_path_for(
    policy_path: str | Path, spec: PolicySpec | None, override: str | Path | None
) -> Path:
    """The catalog to check a policy against: `override` (--deployments), else the file's
    `catalog:` hint (relative to the policy file), else the embedded default catalog."""
    if override is not None:
        return Path(override)
    if spec is not None and spec.catalog:
        hint = Path(spec.catalog)
        return hint if hint.is_absolute() else Path(policy_path).parent / hint
    return DEFAULT_DEPLOYMENTS


def catalog_for(
    policy_path: str | Path,
    spec: PolicySpec,
    loaded: LoadedYaml,
    override: str | Path | None,
) -> tuple[Path, Catalog]:
    """The catalog `catalog_path_for` picks, loaded. A `catalog:` hint that names no file is
    reported at the hint's line, with the path it resolved to (hints are relative to the
    policy file, so a copied policy keeps working only if the catalog moves with it)."""
    path = catalog_path_for(policy_path, spec, override)
    if override is None and spec.catalog and not path.is_file():
        where = "" if Path(spec.catalog).is_absolute() else " (relative to the policy file)"
        issue = ConfigIssue(
            loaded.file,
            loaded.line_of(("catalog",)),
            "catalog",
            f"{spec.catalog} resolves to {os.path.abspath(path)}{where}, which is not a file: "
            "fix the path or pass --deployments FILE",
        )
        raise ConfigError([issue])
    return path, load_catalog(path)


def load_policy_for_cli(
    path: str | Path,
    deployments: str | Path | None = None,
    *,
    resolve_secrets: bool = False,
    env: Mapping[str, str] | None = None,
) -> Policy:
    """Load a policy with the catalog chosen by `catalog_path_for` (schema errors first;
    the catalog's own errors name the catalog file)."""
    text, loaded, spec = read_policy(path)
    _, catalog = catalog_for(path, spec, loaded, deployments)
    return build_policy(
        spec,
        catalog,
        loaded,
        version=content_version(text),
        resolve_secrets=resolve_secrets,
        env=env,
    )


def default_policy(catalog: Catalog | None = None) -> Policy:
    """The embedded default policy (policies/default.yaml) against `catalog` (default: the
    embedded local catalog). It defines no keys, so everyone is the default tenant."""
    return load_policy(DEFAULT_POLICY, catalog or load_catalog(DEFAULT_DEPLOYMENTS))
