"""Every field of the policy schema takes effect: a walk over the schema (every field,
recursively) fails for a field that no runtime code reads, or that names no behavioural test.

"Runtime code" is the package minus the schema itself, the layer-merging machinery
(`policy/limits.py` copies every field, so it proves nothing) and the offline tools (CLI,
explain/diff, chart generation, simulator, profiling, predictor training). A field counts as
read when such a module accesses it by name (`.name` or `"name"`), or by the name it is
resolved under (`ALIASES`).
"""

from __future__ import annotations

import re
import typing

import pytest
from pydantic import BaseModel

from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy.schema import PolicySpec

PACKAGE = PROJECT_ROOT / "orchestrator"
NOT_RUNTIME_FILES = {
    "policy/schema.py",
    "policy/schema_base.py",
    "policy/schema_tenants.py",
    "policy/schema_cluster.py",
    "policy/limits.py",
    "policy/explain.py",
    "policy/diff.py",
}
NOT_RUNTIME_DIRS = ("cli/", "deploy/", "simulate/", "predict/offline/", "profiling/")

# fields resolved onto the loaded policy under another name
ALIASES = {
    "TenantDefaults.requests": "bounds",  # TenantPolicy.bounds
    "PolicySpec.reference_requests": "reference_request",  # PolicySpec.reference_request(c)
}
# descriptive fields: they identify or document, there is nothing to act on
DESCRIPTIVE = {
    "PolicySpec.apiVersion": "document version, checked by the Literal type on load",
    "PolicySpec.kind": "document kind, checked by the Literal type on load",
    "PolicySpec.metadata": "name/description/labels for people and `policy explain`",
    "Metadata.name": "shown on /v1/orchestrator/status",
    "Metadata.description": "documentation only",
    "Metadata.labels": "documentation only (kubectl-style labels for tooling)",
    "PolicySpec.catalog": "CLI hint; the server always checks against the catalog it serves",
    "DefaultTenantSpec.description": "documentation only",
    "TenantSpec.description": "documentation only",
}

_SERVING = (
    "tests/serving/test_policy_fields_in_request_path.py::"
    "test_policy_field_changes_the_request_path"
)
_QUEUE = "tests/scheduling/test_settings.py::test_policy_field_changes_the_queue"
# field -> the test that shows the server (or the router core) acting on it
BEHAVIOUR = {
    # per-tenant limits: policy text -> request path (one parametrized case each)
    "Limits.cost_target_usd": f"{_SERVING}[cost_target_usd]",
    "Limits.cost_cap_usd": f"{_SERVING}[cost_cap_usd]",
    "Limits.latency": f"{_SERVING}[latency.ttft_p95_ms]",
    "LatencySLO.ttft_p95_ms": f"{_SERVING}[latency.ttft_p95_ms]",
    "LatencySLO.tpot_p95_ms": f"{_SERVING}[latency.tpot_p95_ms]",
    "LatencySLO.e2e_p95_ms": f"{_SERVING}[latency.e2e_p95_ms]",
    "Limits.actions": f"{_SERVING}[actions.on_cost_cap]",
    "Actions.on_cost_cap": f"{_SERVING}[actions.on_cost_cap]",
    "Actions.on_budget_exhausted": f"{_SERVING}[actions.on_budget_exhausted]",
    "Actions.cap_tokens_floor": f"{_SERVING}[actions.cap_tokens_floor]",
    "Actions.on_cost_target": f"{_SERVING}[actions.on_cost_target]",
    "Actions.on_slo_unmeetable": f"{_SERVING}[actions.on_slo_unmeetable]",
    "Limits.max_tokens": f"{_SERVING}[max_tokens]",
    "Limits.allowed_profiles": f"{_SERVING}[allowed_profiles]",
    "Limits.denied_profiles": f"{_SERVING}[denied_profiles]",
    "TenantDefaults.budgets": f"{_SERVING}[budgets.per_hour_usd]",
    "Budgets.per_hour_usd": f"{_SERVING}[budgets.per_hour_usd]",
    "Budgets.per_day_usd": f"{_SERVING}[budgets.per_day_usd]",
    "Budgets.per_month_usd": f"{_SERVING}[budgets.per_month_usd]",
    "TenantDefaults.classes": f"{_SERVING}[classes]",
    # quality floor and reasoning: eligibility (resolve) and the router core
    "Limits.quality_floor": "tests/policy/test_policy_limits.py::test_tier_floor",
    "QualityFloor.min_tier": "tests/policy/test_policy_limits.py::test_tier_floor",
    "QualityFloor.min_score": "tests/policy/test_policy_limits.py::test_tier_floor",
    "Limits.quality_target": (
        "tests/routing/test_quality_target.py::test_policy_quality_target_reaches_the_router"
    ),
    "QualityTarget.min_success": (
        "tests/routing/test_quality_target.py::test_policy_quality_target_reaches_the_router"
    ),
    "QualityTarget.share_of_strongest": (
        "tests/routing/test_quality_target.py::test_policy_quality_target_reaches_the_router"
    ),
    "Limits.reasoning": "tests/routing/test_decide.py::test_caller_and_tenant_override_reasoning",
    "ReasoningLimits.allowed": "tests/routing/test_decide.py::test_caller_and_tenant_override_reasoning",
    "ReasoningLimits.max_reasoning_tokens": (
        "tests/routing/test_decide.py::test_reasoning_token_cap_bounds_estimates"
    ),
    # request bounds, shedding priority, failover (issue 15)
    "TenantDefaults.requests": (
        "tests/serving/test_ingress_robustness.py::"
        "test_over_a_bound_is_400_naming_it_before_anything_runs"
    ),
    "RequestBounds.max_n": (
        "tests/serving/test_ingress_robustness.py::"
        "test_over_a_bound_is_400_naming_it_before_anything_runs"
    ),
    "RequestBounds.max_best_of": (
        "tests/serving/test_ingress_robustness.py::"
        "test_over_a_bound_is_400_naming_it_before_anything_runs"
    ),
    "RequestBounds.max_output_tokens": (
        "tests/serving/test_ingress_robustness.py::"
        "test_over_a_bound_is_400_naming_it_before_anything_runs"
    ),
    "RequestBounds.max_prompt_tokens": (
        "tests/serving/test_ingress_robustness.py::test_prompt_over_max_prompt_tokens_is_400"
    ),
    "RequestBounds.max_concurrent_requests": (
        "tests/serving/test_ingress_robustness.py::"
        "test_tenant_over_max_concurrent_requests_is_429_with_retry_after"
    ),
    "TenantDefaults.priority": (
        "tests/request/test_admission.py::test_low_priority_is_shed_before_high_priority"
    ),
    "TenantDefaults.batch": "tests/batch/test_wiring.py::test_the_line_cap_follows_the_policy_and_its_reloads",
    "BatchSettings.max_concurrent_lines": "tests/batch/test_wiring.py::test_the_line_cap_follows_the_policy_and_its_reloads",
    "BatchSettings.price_factor": "tests/serving/test_batch_line.py::test_a_line_is_charged_at_its_price_factor_under_its_request_id",
    "BatchSettings.max_completion_window": "tests/batch/test_batch_api.py::test_a_bad_create_is_a_400_naming_the_field",
    "BatchSettings.yield_to_interactive_s": "tests/batch/test_wiring.py::test_the_yield_follows_the_policy_and_holds_lines_back_beside_interactive_traffic",
    "TenantDefaults.failover": "tests/serving/test_ingress_robustness.py::test_policy_may_forbid_the_retry",
    "Failover.retry": "tests/serving/test_ingress_robustness.py::test_policy_may_forbid_the_retry",
    "Failover.migrate_streams": (
        "tests/serving/test_policy_fields_in_request_path.py::test_migrate_streams_false_asks_no_token_ids"
    ),
    # tenants and keys
    "PolicySpec.unknown_keys": (
        "tests/policy/test_policy_tenants.py::test_unknown_keys_may_fall_back_to_the_default_tenant"
    ),
    "PolicySpec.defaults": "tests/policy/test_policy_limits.py::test_precedence_chain",
    "PolicySpec.default_tenant": "tests/policy/test_policy_limits.py::test_precedence_chain",
    "DefaultTenantSpec.name": "tests/policy/test_policy_tenants.py::test_no_keys_means_everyone_is_the_default_tenant",
    "PolicySpec.tenants": "tests/policy/test_policy_tenants.py::test_known_keys_map_to_their_tenant",
    "TenantSpec.name": "tests/policy/test_policy_tenants.py::test_known_keys_map_to_their_tenant",
    "TenantSpec.api_keys": "tests/policy/test_policy_tenants.py::test_known_keys_map_to_their_tenant",
    "KeyRef.env": "tests/policy/test_policy_tenants.py::test_known_keys_map_to_their_tenant",
    "KeyRef.file": "tests/policy/test_policy_tenants.py::test_absolute_key_file_path",
    # load-time feasibility
    "PolicySpec.reference_requests": (
        "tests/policy/test_policy_checks.py::test_a_shorter_reasoning_request_makes_an_e2e_target_reachable"
    ),
    "ReferenceRequest.input_tokens": (
        "tests/policy/test_policy_checks.py::test_a_shorter_reasoning_request_makes_an_e2e_target_reachable"
    ),
    "ReferenceRequest.output_tokens": (
        "tests/policy/test_policy_checks.py::test_a_shorter_reasoning_request_makes_an_e2e_target_reachable"
    ),
    # prices (the one price model; the server prices with policy.prices)
    "PolicySpec.pricing": "tests/serving/test_route_inputs.py::test_priced_views_use_policy_prices",
    "PricingSpec.utilization": "tests/policy/test_policy_pricing.py::test_lower_utilization_raises_the_price",
    "PricingSpec.cached_input_ratio": (
        "tests/policy/test_policy_pricing.py::test_derived_prices_follow_the_documented_formula"
    ),
    "PricingSpec.profiles": "tests/policy/test_policy_pricing.py::test_explicit_prices_win_per_field",
    "ProfilePrice.input_usd_per_1m": "tests/policy/test_policy_pricing.py::test_explicit_prices_win_per_field",
    "ProfilePrice.cached_input_usd_per_1m": (
        "tests/policy/test_policy_pricing.py::test_explicit_prices_win_per_field"
    ),
    "ProfilePrice.output_usd_per_1m": "tests/policy/test_policy_pricing.py::test_explicit_prices_win_per_field",
    # autoscaling: read by the controller (issue 13, orchestrator/planning + control)
    "PolicySpec.autoscaling": "tests/planning/test_plan.py::test_ramp_up_follows_and_leads_the_load",
    "AutoscalingSpec.headroom": "tests/planning/test_plan.py::test_ramp_up_follows_and_leads_the_load",
    "AutoscalingSpec.scale_to_zero": "tests/planning/test_plan.py::test_scale_to_zero_off_keeps_one",
    "AutoscalingSpec.demand_sizing": (
        "tests/serving/test_ingress_request_path.py::"
        "test_an_admitted_request_is_demand_at_the_policy_s_sizing"
    ),
    "AutoscalingSpec.demand_level": (
        "tests/serving/test_demand_level_feed.py::"
        "test_settled_answers_teach_the_level_the_planner_s_demand_is_exported_at"
    ),
    "DemandLevelSpec.enabled": (
        "tests/serving/test_demand_level_feed.py::"
        "test_settled_answers_teach_the_level_the_planner_s_demand_is_exported_at"
    ),
    "DemandLevelSpec.window": (
        "tests/planning/test_demand_level.py::test_a_smaller_window_follows_a_change_sooner"
    ),
    "DemandLevelSpec.max_factor": (
        "tests/planning/test_demand_level.py::"
        "test_the_level_stays_within_its_bounds_and_a_reload_of_them_acts_on_the_next_read"
    ),
    "AutoscalingSpec.max_cost_per_hour_usd": "tests/planning/test_plan.py::test_spend_ceiling_binds_and_alerts",
    "AutoscalingSpec.profiles": "tests/policy/test_policy_limits.py::test_scaling_bounds",
    "ProfileScaling.min_replicas": "tests/policy/test_policy_limits.py::test_scaling_bounds",
    "ProfileScaling.max_replicas": "tests/policy/test_policy_limits.py::test_scaling_bounds",
    "ProfileScaling.headroom": "tests/policy/test_policy_limits.py::test_scaling_bounds",
    "ProfileScaling.scale_to_zero_delay_s": (
        "tests/planning/test_plan.py::test_scale_to_zero_delay_holds_the_last_replica"
    ),
    "ProfileScaling.scale_to_zero": (
        "tests/policy/test_policy_limits.py::test_scale_to_zero_only_where_the_minimum_is_zero"
    ),
    "AutoscalingSpec.interval_s": "tests/control/test_control.py",  # hub.py; no case of its own
    "AutoscalingSpec.scale_up_delay_s": "tests/planning/test_plan.py::test_ramp_up_follows_and_leads_the_load",
    "AutoscalingSpec.scale_down_delay_s": (
        "tests/planning/test_plan.py::test_ramp_down_waits_for_the_delay_then_steps_down"
    ),
    "AutoscalingSpec.scale_down_margin": (
        "tests/planning/test_plan.py::test_n_minus_1_check_holds_a_scale_down_that_would_re_trigger"
    ),
    "AutoscalingSpec.max_drain_s": (
        "tests/control/test_control.py::test_drain_timeout_follows_the_longest_generation"
    ),
    # scheduling: the ingress queue's order and bounds (orchestrator/scheduling)
    "PolicySpec.scheduling": f"{_QUEUE}[order]",
    "SchedulingSpec.order": f"{_QUEUE}[order]",
    "SchedulingSpec.aging_s": f"{_QUEUE}[aging_s]",
    "SchedulingSpec.max_queued": f"{_QUEUE}[max_queued]",
    "SchedulingSpec.weight": f"{_QUEUE}[weight]",
    "SchedulingSpec.short_work_tokens": (
        "tests/scheduling/test_settings.py::"
        "test_short_work_tokens_from_the_policy_opens_the_short_lane"
    ),
    "SchedulingSpec.fair_headroom": (
        "tests/scheduling/test_settings.py::"
        "test_fair_headroom_from_the_policy_lends_slots_beyond_a_full_batch"
    ),
    "SchedulingSpec.tenants": f"{_QUEUE}[tenants.max_queued]",
    "TenantScheduling.weight": f"{_QUEUE}[weight]",
    "TenantScheduling.max_queued": f"{_QUEUE}[tenants.max_queued]",
    "TenantScheduling.deadline": f"{_QUEUE}[tenants.deadline]",
    "TenantScheduling.max_wait_s": f"{_QUEUE}[tenants.max_wait_s]",
    "SchedulingSpec.max_wait_s": f"{_QUEUE}[max_wait_s]",
}


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _owner(model: type[BaseModel], name: str) -> str:
    """`Class.field` named after the class that declares the field (Limits, not TenantSpec)."""
    for cls in model.__mro__:
        if name in getattr(cls, "__annotations__", {}):
            return f"{cls.__name__}.{name}"
    return f"{model.__name__}.{name}"


def schema_fields() -> list[str]:
    """Every field of the policy schema, recursively, once each (by declaring class)."""
    found: dict[str, None] = {}
    todo: list[type[BaseModel]] = [PolicySpec]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            found[_owner(model, name)] = None
            todo.extend(_models_in(field.annotation))
    return list(found)


def _runtime_sources() -> dict[str, str]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in NOT_RUNTIME_FILES or rel.startswith(NOT_RUNTIME_DIRS):
            continue
        out[rel] = path.read_text(encoding="utf-8")
    return out


FIELDS = schema_fields()
SOURCES = _runtime_sources()


def test_the_walk_covers_nested_models():
    assert len(FIELDS) > 70
    for nested in ("Actions.cap_tokens_floor", "KeyRef.file", "ProfileScaling.scale_to_zero"):
        assert nested in FIELDS


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_is_read_by_runtime_code(field):
    if field in DESCRIPTIVE:
        return
    name = ALIASES.get(field, field.split(".", 1)[1])
    pattern = re.compile(rf"\.{name}\b|[\"']{name}[\"']")
    readers = [rel for rel, text in SOURCES.items() if pattern.search(text)]
    assert readers, f"policy field {field} is validated but no runtime code reads it"


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_names_a_behavioural_test_that_exists(field):
    if field in DESCRIPTIVE:
        return
    assert field in BEHAVIOUR, f"policy field {field} has no behavioural test listed"
    path, _, test = BEHAVIOUR[field].partition("::")
    text = (PROJECT_ROOT / path).read_text(encoding="utf-8")
    if test:
        func = test.split("[", 1)[0]
        assert re.search(rf"def {func}\(", text), f"{BEHAVIOUR[field]} does not exist"
        case = test.partition("[")[2].rstrip("]")
        if case:
            assert f'"{case}"' in text, f"{BEHAVIOUR[field]}: no case {case!r}"
