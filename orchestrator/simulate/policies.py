"""Routers and controllers: ours (the product's decide + planner), the oracle, the baselines.

Ours and the oracle call the product's own functions, never copies: the request adapters of
the server (`orchestrator.serving.route_inputs`), the decision core
(`orchestrator.routing.decide.decide`) and, for scaling, the planning core
(`orchestrator.planning`, see `controllers.py`). The oracle differs only in its inputs: the true
output length as the token budget and the true class (a request whose difficulty needs more
than a medium model is a `reasoning` request, the class the router sends to stronger tiers).

Baselines (docs/benchmark.md states each one's source):
- `static`: the strong profile, replicas for the trace's peak minute, never rescaled;
- `queue`: Ray Serve's default queue-length autoscaling on the strong profile;
- `round-robin`: each request to the next profile in turn, queue-length autoscaling on each;
- `routellm`: a difficulty classifier (80 % accurate) sends hard requests to the strong tier and
  the rest to the cheapest weak profile, queue-length autoscaling on both;
- `dynamo`: Dynamo's SLA planner on the strong profile: every adjustment interval, replicas =
  observed rate x tokens / (per-replica throughput at the TPOT SLO) + prefill share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.concepts import TIER_RANK, LatencySLO
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.replica_model import LiveState
from orchestrator.routing.decide import decide
from orchestrator.routing.refusal import OVERLOAD_CODE, intended_profile, overload_shares
from orchestrator.routing.types import ProfileView, TokenBudget
from orchestrator.routing.views import with_live
from orchestrator.serving import admission, route_inputs
from orchestrator.serving.errors import OrchestratorHTTPError
from orchestrator.serving.profile_selection import candidates_for_model
from orchestrator.simulate.cluster import Cluster, Rejected, Routed
from orchestrator.simulate.traffic import SimRequest

NO_TARGETS = route_inputs.CallerTargets()


def tenant_of(policy: Policy, name: str) -> TenantPolicy:
    return policy.tenants.get(name) or policy.default_tenant


class FixedRouter:
    """Every request to one profile (static, queue-length and Dynamo baselines)."""

    def __init__(self, index: int, profile: Profile) -> None:
        self.index = index
        self.max_len = profile.max_model_len

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        room = self.max_len - req.prompt_tokens
        if room < 1:
            return Rejected("context_length_exceeded")
        return Routed(self.index, min(req.output_tokens, room), req.output_tokens > room)


class RoundRobinRouter:
    def __init__(self, indices: Sequence[int], profiles: Sequence[Profile]) -> None:
        self.routers = [FixedRouter(i, p) for i, p in zip(indices, profiles, strict=True)]
        self.next = 0

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        for _ in range(len(self.routers)):  # skip profiles the prompt does not fit
            r = self.routers[self.next]
            self.next = (self.next + 1) % len(self.routers)
            res = r.route(req, cluster, now)
            if isinstance(res, Routed):
                return res
        return Rejected("context_length_exceeded")


class ThresholdRouter:
    """RouteLLM-style: strong tier when the (noisy) difficulty signal says hard."""

    def __init__(self, weak: FixedRouter, strong: FixedRouter, hard: np.ndarray) -> None:
        self.weak, self.strong, self.hard = weak, strong, hard

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        first, second = (self.strong, self.weak) if self.hard[req.rid] else (self.weak, self.strong)
        res = first.route(req, cluster, now)
        return res if isinstance(res, Routed) else second.route(req, cluster, now)


@dataclass
class Prepared:
    """Per-request inputs shared by every policy (predicted once)."""

    budgets: list[TokenBudget]  # from the first candidate's prediction, as the ingress uses


class DecideRouter:
    """The product's path: tenant rules + live views -> `decide` (ours; `oracle=True`: truth)."""

    def __init__(
        self,
        catalog: Catalog,
        policy: Policy,
        prepared: Prepared,
        *,
        oracle: bool = False,
        long_form_tokens: int = 500,
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.prepared = prepared
        self.oracle = oracle
        self.long_form_tokens = long_form_tokens
        self.views = list(route_inputs.priced_views(catalog, policy).values())
        self.names = [v.name for v in self.views]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.prices = [policy.prices[n] for n in self.names]
        self._live_key: list[tuple | None] = [None] * len(self.views)
        self._live_views: list[ProfileView] = list(self.views)
        self._rules: dict[tuple, object] = {}
        self.spent: dict[str, dict[int, float]] = {}  # tenant -> hour bucket -> USD
        self.decisions = 0
        self.priorities = [t.priority for t in policy.reachable_tenants()]
        self._eligible: dict[tuple, list[str]] = {}

    def _views(self, cluster: Cluster) -> list[ProfileView]:
        for i, pool in enumerate(cluster.pools):
            key = (
                pool.ready,
                pool.in_flight,
                len(pool.pending),
                pool.target > 0 or pool.max_replicas > 0,
            )
            if key != self._live_key[i]:
                self._live_key[i] = key
                live = LiveState(
                    replicas_running=pool.ready,
                    requests_in_flight=pool.in_flight,
                    requests_queued=len(pool.pending),
                    healthy=key[3],
                )
                self._live_views[i] = with_live([self.views[i]], {self.names[i]: live})[0]
        return self._live_views

    def _budget(self, tenant: TenantPolicy, now: float) -> route_inputs.BudgetState:
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return route_inputs.BudgetState(None, None)
        hour = int(now // 3600)
        per_hour = self.spent.get(tenant.name, {})
        total = sum(per_hour.values())
        spent = {
            "hour": (per_hour.get(hour, 0.0), int((hour + 1) * 3600 - now) + 1),
            "day": (total, 86_400),
            "month": (total, 86_400 * 30),
        }
        return route_inputs.budget_state(tenant.budgets, spent, 0.0)

    def _token_budget(self, req: SimRequest) -> TokenBudget:
        """Ours: the predictor's budget. The oracle: the truth in the same shape, i.e. the true
        length as p50 and p90, and the class the truth gives: `reasoning` when the request
        needs more than a medium model (its difficulty), else `long_form` / `standard` by its
        true length (`long_context` stays: it depends on the prompt only)."""
        tb = self.prepared.budgets[req.rid]
        if not self.oracle:
            return tb
        cls = tb.query_class
        hard = TIER_RANK.get(req.tier, 0) > TIER_RANK["medium"]
        if cls != "long_context":
            if hard:
                cls = "reasoning"
            else:
                cls = "long_form" if req.output_tokens >= self.long_form_tokens else "standard"
        return TokenBudget(
            p50_output_tokens=req.output_tokens,
            p90_output_tokens=req.output_tokens,
            reasoning_probability=1.0 if hard else 0.0,
            reasoning_tokens=tb.reasoning_tokens if hard else 0,
            query_class=cls,
        )

    def _eligible_for(self, tenant: TenantPolicy, query_class: str, model: str) -> list[str]:
        """The profiles serving `model` that the tenant may use for the class (as the server's
        admission counts them; none for a model the catalog does not serve: `decide` 404s)."""
        key = (tenant.name, query_class, model)
        found = self._eligible.get(key)
        if found is None:
            try:
                served = {p.name for p in candidates_for_model(model, self.catalog)}
            except OrchestratorHTTPError:
                served = set()
            found = admission.eligible_for(tenant, query_class, served)
            self._eligible[key] = found
        return found

    def _shed(
        self,
        req: SimRequest,
        tenant: TenantPolicy,
        tb: TokenBudget,
        views: list[ProfileView],
        cluster: Cluster,
    ) -> Rejected | None:
        """The server's overload shedding (`serving.admission`): a 429 when every eligible
        replica is saturated beyond the queue the tenant's priority allows; the shed request is
        demand the planner sees, split over the eligible running profiles as the server's
        meter splits it (`routing.refusal.overload_shares`)."""
        eligible = self._eligible_for(tenant, tb.query_class, req.body.get("model") or "auto")
        try:
            admission.check_overload(
                admission.loads_of(views, eligible),
                priority=tenant.priority,
                priorities=self.priorities,
            )
        except OrchestratorHTTPError as exc:
            for name, share in overload_shares(views, eligible).items():
                pool = cluster.pools[self.index[name]]
                pool.refused += share
                pool.refused_prompt_tokens += share * req.prompt_tokens
                pool.refused_predicted_tokens += share * tb.p50_output_tokens
            return Rejected(exc.code or OVERLOAD_CODE)
        return None

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        tenant = tenant_of(self.policy, req.tenant)
        tb = self._token_budget(req)
        budget = self._budget(tenant, now)
        rkey = (tenant.name, tb.query_class, budget.remaining_usd)
        rules = self._rules.get(rkey)
        if rules is None:
            rules = route_inputs.tenant_rules(
                tenant, tb.query_class, budget, tenant.eligible_profiles(tb.query_class)
            )
            if budget.remaining_usd is None:
                self._rules[rkey] = rules
        request = route_inputs.route_request(req.body, req.prompt_tokens, NO_TARGETS)
        views = self._views(cluster)
        shed = self._shed(req, tenant, tb, views, cluster)
        if shed is not None:
            return shed
        decision = decide(request, tb, rules, views)
        self.decisions += 1
        if decision.profile is None:
            meant = intended_profile(decision, views, req.prompt_tokens)
            if meant is not None:  # demand the planner sees (as the server's meter records)
                pool = cluster.pools[self.index[meant.profile]]
                pool.refused += 1
                pool.refused_prompt_tokens += req.prompt_tokens
                pool.refused_predicted_tokens += meant.output_tokens
            rej = decision.rejection
            return Rejected(rej.code if rej else "rejected")
        idx = self.index[decision.profile]
        tokens = req.output_tokens
        cap = decision.max_tokens
        truncated = cap is not None and cap < tokens
        if truncated:
            tokens = max(1, cap)
        if budget.remaining_usd is not None:
            cost = self.prices[idx].cost_usd(req.prompt_tokens, tokens, 0)
            hour = int(now // 3600)
            per = self.spent.setdefault(tenant.name, {})
            per[hour] = per.get(hour, 0.0) + cost
        predicted = decision.estimate.output_tokens if decision.estimate else tokens
        cluster.pools[idx].predicted_tokens += predicted
        return Routed(idx, tokens, truncated, predicted, tb.query_class)


def strong_profile(catalog: Catalog) -> Profile:
    """The highest quality tier; among those, the cheapest per output token at full load."""
    top = max(TIER_RANK[p.quality.tier] for p in catalog.profiles)
    return min(
        (p for p in catalog.profiles if TIER_RANK[p.quality.tier] == top),
        key=lambda p: (p.price_per_replica_hour_usd / p.performance.output_tokens_per_s, p.name),
    )


def weak_profile(catalog: Catalog) -> Profile:
    """The cheapest profile per output token at full load."""
    return min(
        catalog.profiles,
        key=lambda p: (p.price_per_replica_hour_usd / p.performance.output_tokens_per_s, p.name),
    )


def tightest_slo(policy: Policy) -> LatencySLO:
    """The tightest standard-class TTFT and TPOT p95 targets of the tenants traffic can belong
    to (e2e targets depend on each request's length: a capacity plan cannot use them)."""
    ttft: float | None = None
    tpot: float | None = None
    for t in policy.reachable_tenants():
        lat = t.limits("standard").latency
        if lat.ttft_p95_ms is not None:
            ttft = lat.ttft_p95_ms if ttft is None else min(ttft, lat.ttft_p95_ms)
        if lat.tpot_p95_ms is not None:
            tpot = lat.tpot_p95_ms if tpot is None else min(tpot, lat.tpot_p95_ms)
    return LatencySLO(ttft_p95_ms=ttft, tpot_p95_ms=tpot)
