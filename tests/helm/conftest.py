"""Fixtures for the chart and manifest tests: the Helm SDK, kubectl, rendered objects."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from orchestrator.deploy.sync import EXAMPLES, Example


@pytest.fixture(scope="session")
def helm() -> Any:
    """The Helm SDK (PyPI helm-python-sdk, a dev dependency: missing it fails, never skips)."""
    import helm_python as module

    module.disable_logging()
    return module


@pytest.fixture(scope="session")
def render(helm: Any) -> Any:
    """render(values, release=..., namespace=...) -> list of objects (NOTES.txt excluded)."""
    from orchestrator.deploy.helm_render import render_chart

    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(
        values: dict[str, Any] | None = None,
        *,
        release: str = "orchestrator",
        namespace: str = "orchestrator",
    ) -> list[dict[str, Any]]:
        key = repr((values, release, namespace))
        if key not in cache:
            cache[key] = render_chart(values, release=release, namespace=namespace)
        return cache[key]

    return _render


@pytest.fixture(params=EXAMPLES, ids=[e.name for e in EXAMPLES])
def example(request: pytest.FixtureRequest) -> Example:
    return request.param


@pytest.fixture(scope="session")
def kustomize() -> Any:
    """kustomize(dir) -> objects, via `kubectl kustomize` (./install.sh installs kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not installed: run ./install.sh (or apt-get install kubernetes-client)"
        )

    def _build(path: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            [kubectl, "kustomize", path], check=True, capture_output=True, text=True, timeout=120
        )
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    return _build
