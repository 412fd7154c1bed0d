"""Resolve tenants' API key references (environment variables, files) into key digests.

The only I/O of policy loading besides reading the policy file. Keys never leave this module
in clear: the result maps SHA-256 digests to tenant names. Errors are located ConfigIssues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config_files import ConfigIssue, LoadedYaml
from orchestrator.policy.checks import field_name
from orchestrator.policy.model import key_digest
from orchestrator.policy.schema import PolicySpec
from orchestrator.policy.schema_tenants import KeyRef


@dataclass(frozen=True)
class ResolvedKeys:
    index: dict[str, str]  # sha256(key) -> tenant name
    files: tuple[str, ...]  # key files read (the watcher re-reads them to see rotations)
    issues: list[ConfigIssue]


def key_file_path(ref: KeyRef, policy_file: str) -> Path:
    """A key file's path; relative paths are relative to the policy file's directory."""
    assert ref.file is not None
    p = Path(ref.file)
    return p if p.is_absolute() else Path(policy_file).parent / p


def _read_keys(
    ref: KeyRef, policy_file: str, env: Mapping[str, str]
) -> tuple[list[str], str | None, str | None]:
    """(keys, file read or None, error or None)."""
    if ref.env is not None:
        value = env.get(ref.env)
        if value is None:
            return [], None, f"environment variable {ref.env} is not set"
        if not value.strip():
            return [], None, f"environment variable {ref.env} is empty"
        return [value.strip()], None, None
    path = key_file_path(ref, policy_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [], None, f"cannot read key file {path}: {exc.strerror}"
    keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not keys:
        return [], str(path), f"key file {path} holds no key"
    return keys, str(path), None


def resolve_keys(spec: PolicySpec, loaded: LoadedYaml, env: Mapping[str, str]) -> ResolvedKeys:
    """Read every tenant's keys; a key shared by two tenants is an error."""
    index: dict[str, str] = {}
    files: list[str] = []
    issues: list[ConfigIssue] = []
    for i, tenant in enumerate(spec.tenants):
        for j, ref in enumerate(tenant.api_keys):
            loc = ("tenants", i, "api_keys", j, "env" if ref.env is not None else "file")
            keys, read, error = _read_keys(ref, loaded.file, env)
            if read:
                files.append(read)
            if error:
                issues.append(ConfigIssue(loaded.file, loaded.line_of(loc), field_name(loc), error))
            for key in keys:
                owner = index.setdefault(key_digest(key), tenant.name)
                if owner != tenant.name:
                    issues.append(
                        ConfigIssue(
                            loaded.file,
                            loaded.line_of(loc),
                            field_name(loc),
                            f"a key from {ref.describe()} is also a key of tenant {owner!r}",
                        )
                    )
    return ResolvedKeys(index=index, files=tuple(dict.fromkeys(files)), issues=issues)
