"""Shared helpers for policy tests: catalogs, and policies written to tmp files whose
expected error line is marked in the YAML with a `# <-` comment."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.catalog import Catalog
from orchestrator.config_files import ConfigError, ConfigIssue
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import Policy, load_policy

GPU_CATALOG = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
LOCAL_CATALOG = PROJECT_ROOT / "deployments" / "local.yaml"
HEADER = "apiVersion: orchestrator/v1\nkind: Policy\n"


def policy_text(body: str, header: str = HEADER) -> str:
    return header + textwrap.dedent(body).lstrip("\n")


def marked_line(text: str, marker: str = "# <-") -> int:
    """1-based line of the (single) line carrying `marker`."""
    lines = [i for i, ln in enumerate(text.splitlines(), 1) if marker in ln]
    assert len(lines) == 1, f"expected one {marker!r} marker, found {len(lines)}"
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, body: str, catalog: Catalog, **kw) -> Policy:
    return load_policy(write(tmp_path, policy_text(body)), catalog, **kw)


def issues_of(tmp_path: Path, body: str, catalog: Catalog, **kw) -> tuple[list[ConfigIssue], str]:
    """Load a policy that must fail; returns its issues and the full text."""
    text = policy_text(body)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path, catalog, **kw)
    return info.value.issues, text


def only_issue(tmp_path: Path, body: str, catalog: Catalog, **kw) -> tuple[ConfigIssue, int]:
    """The single issue of a failing policy, and the line its `# <-` marker is on."""
    issues, text = issues_of(tmp_path, body, catalog, **kw)
    assert len(issues) == 1, "\n".join(str(i) for i in issues)
    return issues[0], marked_line(text)
