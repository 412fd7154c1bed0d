"""Every generated artefact (values.yaml, values.schema.json, examples, docs reference, k8s/)
is what `python -m orchestrator.deploy.sync` would write now."""

from __future__ import annotations

from orchestrator.deploy.sync import expected_files, stale_files
from orchestrator.paths import PROJECT_ROOT


def test_values_schema_examples_and_docs_are_current() -> None:
    stale = stale_files(expected_files(with_k8s=False))
    stale = [p for p in stale if not p.is_relative_to(PROJECT_ROOT / "k8s")]
    assert stale == [], "stale; run `python -m orchestrator.deploy.sync`"


def test_kustomize_tree_is_current(helm) -> None:
    stale = stale_files(expected_files(with_k8s=True))
    assert stale == [], "stale; run `python -m orchestrator.deploy.sync`"
