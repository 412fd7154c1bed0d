"""The Grafana dashboard: structurally valid, and every PromQL expression names only metrics
that `render_prometheus()` really exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

# PromQL words that look like metric names but are not
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
PANEL_TYPES = {"row", "stat", "timeseries", "bargauge", "gauge", "table"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords, labels, strings excluded)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\$\{[^}]*\}|\$\w+", "1", s)  # Grafana variables
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors
    s = _GROUPING.sub(" ", s)  # label lists of by/without/on/ignoring/group_*
    names = set()
    for m in _IDENT.finditer(s):
        if s[m.end() :].lstrip().startswith("("):  # a function call
            continue
        if m.group(0).lower() not in _KEYWORDS:
            names.add(m.group(0))
    return names


def exported_sample_names(metrics: Any) -> set[str]:
    body, _ = metrics.render_prometheus()
    return {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (tenant) (rate(a_total{x="by(y)"}[5m])) * 3600', {"a_total"}),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("max by (t) (lim) - on (t) group_left (w) max by (t) (rem) > bool 1e3", {"lim", "rem"}),
        ("x offset 5m / ignoring(kind) y unless z", {"x", "y", "z"}),
        ('label_replace(up, "a", "$1", "b", "(.*)")', {"up"}),
    ],
)
def test_promql_name_extraction(expr: str, expected: set[str]) -> None:
    assert promql_metric_names(expr) == expected


def test_every_expression_names_exported_metrics(sample_metrics, dashboard_queries) -> None:
    exported = exported_sample_names(sample_metrics)
    assert len(dashboard_queries) >= 20
    used: set[str] = set()
    for title, expr in dashboard_queries:
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} not exported"
        used |= names
    # the dashboard covers cost, budget, SLO, capacity and the predictor
    for name in (
        "orchestrator_cost_usd_total",
        "orchestrator_budget_limit_usd",
        "orchestrator_budget_remaining_usd",
        "orchestrator_spend_rate_usd_per_hour",
        "orchestrator_slo_requests_total",
        "orchestrator_replicas_target",
        "orchestrator_replicas_current",
        "orchestrator_prediction_actual_to_p50_ratio_bucket",
        "orchestrator_prediction_p90_total",
        "orchestrator_time_to_first_token_seconds_bucket",
    ):
        assert name in used, name


def test_template_variables_query_exported_metrics(sample_metrics, dashboard) -> None:
    exported = exported_sample_names(sample_metrics)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("tenant", "profile"):
        query = variables[name]["query"]["query"]
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        assert m and m.group(1) in exported and m.group(2) == name, query
    assert [o["value"] for o in variables["window"]["options"]] == ["hour", "day", "month"]


def test_dashboard_structure(dashboard) -> None:
    assert dashboard["uid"] == "orchestrator"  # the Helm ConfigMap test looks for it
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    ids: list[int] = []
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        ids.append(panel["id"])
        g = panel["gridPos"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["x"] + g["w"] <= 24, panel
        cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"]
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables or var.startswith("__"), f"{panel['title']}: ${var}"
    assert len(set(ids)) == len(ids), "panel ids must be unique"


def _lost_keys(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths in `ours` that are missing from or differ in `theirs`."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [path]
        lost = []
        for key, value in ours.items():
            sub = f"{path}/{key}"
            lost += _lost_keys(value, theirs[key], sub) if key in theirs else [sub]
        return lost
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for p in _lost_keys(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [path]


def test_loads_with_the_grafana_foundation_sdk(dashboard) -> None:
    """Grafana's own typed models read every key we wrote (a misspelled key would be lost)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    again = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    lost = _lost_keys(dashboard, again)
    # the SDK does not model these two real Grafana keys
    assert {re.sub(r"\[\d+\]", "[]", p) for p in lost} <= {
        "/annotations/list[]/builtIn",
        "/templating/list[]/definition",
    }, lost
