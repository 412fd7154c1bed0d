"""Render the chart offline with the Helm SDK (PyPI `helm-python-sdk`, no helm binary).

Development and test edge only: `orchestrator render` never needs Helm. Import errors name the
package to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.paths import PROJECT_ROOT

CHART_DIR = PROJECT_ROOT / "helm" / "orchestrator"


def _helm() -> Any:
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("rendering the chart needs `pip install helm-python-sdk`") from exc
    return helm_python


def render_chart(
    values: dict[str, Any] | None = None,
    *,
    release: str = "orchestrator",
    namespace: str = "orchestrator",
    chart_dir: Path = CHART_DIR,
) -> list[dict[str, Any]]:
    """Every object the chart renders (NOTES.txt excluded), in template order.

    Raises the SDK's HelmValuesError (schema) or HelmRenderError (template `fail`).
    """
    helm = _helm()
    with helm.Chart.load(str(chart_dir)) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        objects += [d for d in yaml.safe_load_all(manifests[path]) if d]
    return objects


def render_notes(values: dict[str, Any] | None = None, *, release: str = "orchestrator") -> str:
    """The chart's NOTES.txt as rendered for `values`."""
    helm = _helm()
    with helm.Chart.load(str(CHART_DIR)) as chart:
        manifests = chart.render(values, name=release, namespace="orchestrator", is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def lint_chart(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """`helm lint --strict` report: {"messages": [{"severity", "path", "error"}], "errors": [...]}."""
    return _helm().lint(str(CHART_DIR), values, strict=True, namespace="orchestrator")
