"""Budget gauges from the ledger: what the shipped PrometheusRule alerts read.

- `orchestrator_budget_limit_usd{tenant,window}` and `orchestrator_budget_remaining_usd`
  (limit minus the recorded spend of the current calendar window, floored at 0);
- `orchestrator_spend_rate_usd_per_hour{tenant}`: recorded spend over the last hour.

Run in a worker thread (SQLite). The executor calls `set_window_gauges` with the spend it
reads for every budgeted request, and `export_budgets` for every reachable tenant before each
`/metrics` scrape, so a tenant's gauges exist even before its first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from orchestrator.ledger import UsageLedger, Window, WindowSpend
from orchestrator.policy import Policy
from orchestrator.request.route_inputs import budget_limits
from orchestrator.telemetry import OrchestratorMetrics

SPEND_RATE_WINDOW = timedelta(hours=1)


def set_window_gauges(
    metrics: OrchestratorMetrics,
    tenant: str,
    limits: Mapping[Window, float],
    spends: Mapping[Window, WindowSpend],
) -> None:
    """Limit and remaining budget per window, from spend just read from the ledger."""
    for window, limit in limits.items():
        spent = spends[window].cost_usd if window in spends else 0.0
        metrics.set_budget(tenant, window, limit, limit - spent)


def export_budgets(
    ledger: UsageLedger, metrics: OrchestratorMetrics, policy: Policy, now: datetime
) -> None:
    """Budget gauges and spend rate of every reachable tenant that has a budget."""
    for tenant in policy.reachable_tenants():
        limits = budget_limits(tenant.budgets)
        if not limits:
            continue
        spends = ledger.spend_windows(tenant.name, list(limits), now=now)
        set_window_gauges(metrics, tenant.name, limits, spends)
        usd, _n = ledger.spend_between(tenant.name, now - SPEND_RATE_WINDOW, now)
        metrics.set_spend_rate(tenant.name, usd / (SPEND_RATE_WINDOW.total_seconds() / 3600))
