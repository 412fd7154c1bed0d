"""Resource names and labels, computed exactly as the chart's `_helpers.tpl` does."""

from __future__ import annotations

from orchestrator import __version__
from orchestrator.deploy.values import ChartValues

CHART_NAME = "orchestrator"
# Labels only Helm adds (it knows the chart version and manages the release); the RayService
# that `orchestrator render` emits equals the chart's except for these.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def _trunc(name: str) -> str:
    """Helm's `trunc 63 | trimSuffix "-"` (drops one trailing dash)."""
    cut = name[:63]
    return cut[:-1] if cut.endswith("-") else cut


def chart_name(values: ChartValues) -> str:
    return _trunc(values.nameOverride or CHART_NAME)


def fullname(release: str, values: ChartValues) -> str:
    """Prefix of every resource name (Helm's usual `fullname` rule)."""
    if values.fullnameOverride:
        return _trunc(values.fullnameOverride)
    name = values.nameOverride or CHART_NAME
    return _trunc(release if name in release else f"{release}-{name}")


def selector_labels(release: str, values: ChartValues) -> dict[str, str]:
    return {"app.kubernetes.io/name": chart_name(values), "app.kubernetes.io/instance": release}


def common_labels(release: str, values: ChartValues) -> dict[str, str]:
    """Labels of every object, minus HELM_ONLY_LABELS."""
    return {
        **selector_labels(release, values),
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/part-of": "orchestrator",
    }


def service_account_name(release: str, values: ChartValues) -> str:
    sa = values.serviceAccount
    if sa.name:
        return sa.name
    return fullname(release, values) if sa.create else "default"


def catalog_configmap(release: str, values: ChartValues) -> str:
    return values.catalog.existingConfigMap or f"{fullname(release, values)}-catalog"


def policy_configmap(release: str, values: ChartValues) -> str:
    return values.policy.existingConfigMap or f"{fullname(release, values)}-policy"


def ledger_claim(release: str, values: ChartValues) -> str:
    return values.ledger.existingClaim or f"{fullname(release, values)}-ledger"


DATABASE_SECRET_KEY = "url"


def database_secret(release: str, values: ChartValues) -> tuple[str, str]:
    """(Secret name, key) holding the PostgreSQL URL: the existing Secret, else the chart's."""
    db = values.database
    if db.existingSecret:
        return db.existingSecret, db.existingSecretKey
    return f"{fullname(release, values)}-database", DATABASE_SECRET_KEY
