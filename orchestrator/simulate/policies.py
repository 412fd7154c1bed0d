"""Routers and controllers: ours (the product's decide + planner), the oracle, the baselines.

Ours and the oracle call the product's own functions, never copies: the request core's `plan`
(`orchestrator.request.plan`: the server's admission, budget and routing rules, with budget
windows kept as the server's ledger keeps them, `request/spend.py`) and, for scaling, the
planning core (`orchestrator.planning`, see `controllers.py`). The oracle differs only in its inputs: the true
output length as the token budget and the true class (a request whose difficulty needs more
than a medium model is a `reasoning` request, the class the router sends to stronger tiers).

Baselines (docs/benchmark.md states each one's source):
- `static`: the strong profile, replicas for the trace's peak minute, never rescaled;
- `queue`: Ray Serve's default queue-length autoscaling on the strong profile;
- `round-robin`: each request to the next profile in turn, queue-length autoscaling on each;
- `routellm`: RouteLLM's threshold router on our difficulty model: a request whose predicted
  success on the weak profile's tier is below a threshold goes to the strong profile, the rest
  to the cheapest (weak) profile, queue-length autoscaling on both;
- `dynamo`: Dynamo's SLA planner on the strong profile: every adjustment interval, replicas =
  observed rate x tokens / (per-replica throughput at the TPOT SLO) + prefill share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.concepts import TIER_RANK, LatencySLO
from orchestrator.planning.expected import sized_of, sized_tokens
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.request import live, route_inputs
from orchestrator.request.admission import held_by_queue
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.errors import RequestError
from orchestrator.request.plan import PlanState, Predicted, Refused, plan
from orchestrator.request.prefix_index import PrefixIndex
from orchestrator.request.spec import RequestSpec, read_spec
from orchestrator.request.spend import SpendBook
from orchestrator.routing.quality import QualityAccounts
from orchestrator.routing.refusal import OVERLOAD_CODE, intended_profile, overload_shares
from orchestrator.routing.types import Estimate, ProfileView, TokenBudget
from orchestrator.routing.views import with_live
from orchestrator.signals.opening import OpeningDemand
from orchestrator.signals.refusals import intended_sized
from orchestrator.simulate.cluster import Cluster, Rejected, Routed
from orchestrator.simulate.pool import ScheduledQueue
from orchestrator.simulate.traffic import SimRequest

# virtual time 0 of a replay on the calendar (budget windows are calendar hours, days, months)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# what ours' planner may size output from (planning/expected.py; the policy's
# `autoscaling.demand_sizing` unless a run overrides it)
DEMAND_TOKENS = ("expected", "p50")
PRUNE_AT = 1024  # DecideRouter._counted: requests counted before the first pruning


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
            return Rejected("context_length_exceeded", 400)
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
        return Rejected("context_length_exceeded", 400)


class ThresholdRouter:
    """RouteLLM-style: strong tier when the difficulty signal says hard."""

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
    """The product's path: the request core's `plan` on live views (ours; `oracle=True`: the
    truth as the token budget). Refusals (bounds, concurrency, overload, budget, cost, SLO)
    are the server's; the capacity ones are demand the planner sees, as the server's meter
    records it (`signals/refusals.py`)."""

    def __init__(
        self,
        catalog: Catalog,
        policy: Policy,
        prepared: Prepared,
        *,
        oracle: bool = False,
        long_form_tokens: int = 500,
        epoch: datetime = EPOCH,
        demand_tokens: str | None = None,
    ) -> None:
        if demand_tokens is not None and demand_tokens not in DEMAND_TOKENS:
            raise ValueError(f"demand_tokens: {demand_tokens!r}, not one of {DEMAND_TOKENS}")
        # what the planner sizes from: the policy's `autoscaling.demand_sizing` unless told
        self.demand_tokens = demand_tokens or policy.spec.autoscaling.demand_sizing
        self.policy = policy
        self.catalog = catalog
        self.prepared = prepared
        self.oracle = oracle
        self.long_form_tokens = long_form_tokens
        self.epoch = epoch
        self.views = list(route_inputs.priced_views(catalog, policy).values())
        self.names = [v.name for v in self.views]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.prices = [policy.prices[n] for n in self.names]
        self._live_key: list[tuple | None] = [None] * len(self.views)
        self._live_views: list[ProfileView] = list(self.views)
        self.spend = SpendBook()  # what routed requests cost, per calendar budget window
        # tenant -> its routed requests not yet seen served or refused (its requests in flight,
        # for `requests.max_concurrent_requests`; kept only for tenants with that bound)
        self._running: dict[str, list[int]] = {}
        self.decisions = 0
        self._candidates: dict[str | None, list[Profile]] = {}
        self.opening = OpeningDemand()  # requests a closed profile lost on its opening price
        self.quality = QualityAccounts()  # each tenant's running expected quality (its target)
        # rid -> (tenant, served success) of routed requests held to a share target: one the
        # cluster refuses before a replica takes it counts 0 answered (`dropped`)
        self._counted: dict[int, tuple[str, float]] = {}
        self._counted_prune_at = PRUNE_AT  # pruned of served requests past this size
        self.prefix = PrefixIndex()  # prompt blocks routed to each profile (prefix caching)
        self._profiles = [catalog.profile(n) for n in self.names]

    def _views(self, cluster: Cluster, now: float) -> list[ProfileView]:
        """The views of the virtual cluster's pools now, built as the server builds its own
        (`request.live.live_state`): closed pools at their opening price."""
        for i, pool in enumerate(cluster.pools):
            profile = self._profiles[i]
            first_ready = None
            if pool.ready == 0 and pool.starting > 0:  # ms until the first starting one serves
                first_ready = 1000.0 * max(0.0, pool.first_ready_s() - now)
            closed = pool.target == 0 and pool.in_flight == 0 and not pool.pending
            replicas = live.Replicas(
                running=pool.ready,
                starting=pool.starting,
                first_ready_ms=first_ready,
                may_open=closed and live.may_open(profile, self.policy),
            )
            rps = self.opening.rps(self.names[i], now) if closed else 0.0
            key = (replicas, pool.in_flight, len(pool.pending), rps)
            if key != self._live_key[i]:
                self._live_key[i] = key
                state = live.live_state(
                    profile,
                    self.policy,
                    replicas,
                    pool.in_flight,
                    queued=len(pool.pending),
                    opening_rps=rps,
                )
                self._live_views[i] = with_live([self.views[i]], {self.names[i]: state})[0]
        return self._live_views

    def _cached(self, views: list[ProfileView], blocks: tuple) -> list[ProfileView]:
        """The views with each profile's expected prefix-cache hits for this prompt."""
        if not blocks:
            return views
        shares = {v.name: self.prefix.cached_share(v.name, blocks) for v in views}
        live = {
            n: views[self.index[n]].live.model_copy(update={"cached_prompt_share": s})
            for n, s in shares.items()
            if s > 0
        }
        return with_live(views, live) if live else views

    def budget_state(self, tenant: TenantPolicy, now: float) -> route_inputs.BudgetState:
        """The tenant's remaining budget at virtual time `now`, from the calendar windows of
        what its routed requests cost (as the server reads its ledger)."""
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return route_inputs.BudgetState(None, None)
        spent = self.spend.spent(tenant.name, limits, self.epoch + timedelta(seconds=now))
        return route_inputs.budget_state(tenant.budgets, spent, 0.0)

    def _in_flight(self, tenant: TenantPolicy, cluster: Cluster) -> int:
        """The tenant's routed requests not yet served or refused (only counted for a tenant
        with a concurrency bound), as the server's load book counts them: by what happened,
        not by the end the router priced (a priced queue wait is an estimate)."""
        if tenant.bounds.max_concurrent_requests is None:
            return 0
        rids = self._running.setdefault(tenant.name, [])
        done = cluster.done  # a request outside the cluster's run is still in flight
        rids[:] = [r for r in rids if r >= done.size or not done[r]]
        return len(rids)

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

    def candidates(self, model: str | None) -> list[Profile]:
        """The profiles serving `model` (none for a model the catalog does not serve: the
        decision then refuses it, as the server's 404 does)."""
        found = self._candidates.get(model)
        if found is None:
            try:
                found = candidates_for_model(model, self.catalog)
            except RequestError:
                found = []
            self._candidates[model] = found
        return found

    def plan_inputs(
        self, req: SimRequest, cluster: Cluster, now: float
    ) -> tuple[RequestSpec, TenantPolicy, Predicted, PlanState]:
        """What the request core plans this request with (the server's inputs, from the
        replay's state)."""
        tenant = tenant_of(self.policy, req.tenant)
        spec = read_spec(req.body, "completions" if "prompt" in req.body else "chat")
        predicted = Predicted(
            candidates=self.candidates(spec.model),
            budget=self._token_budget(req),
            prompt_tokens=req.prompt_tokens,
        )
        state = PlanState(
            policy=self.policy,
            catalog=self.catalog,
            views=self._cached(self._views(cluster, now), req.prefix_blocks),
            budget=self.budget_state(tenant, now),
            tenant_in_flight=self._in_flight(tenant, cluster),
            ahead=queue_places(cluster, tenant.name),
            held=queue_held(cluster),
            quality=self.quality.of(tenant.name).sums,
        )
        return spec, tenant, predicted, state

    def _refused(
        self, refused: Refused, req: SimRequest, views: list[ProfileView], cluster: Cluster
    ) -> None:
        """Demand the planner sees (as the server's meter records it): an overload split over
        the eligible running profiles, a capacity rejection on the profile it was meant for."""
        budget = refused.predicted.budget
        if refused.code == OVERLOAD_CODE:
            shares = overload_shares(views, refused.eligible).items()
            for name, share in shares:
                pool = cluster.pools[self.index[name]]
                pool.refused += share
                pool.refused_prompt_tokens += share * req.prompt_tokens
                pool.refused_predicted_tokens += share * self._demand(None, budget)
            return
        meant = intended_profile(refused.decision, views, req.prompt_tokens)
        if meant is not None:
            pool = cluster.pools[self.index[meant.profile]]
            pool.refused += 1
            pool.refused_prompt_tokens += req.prompt_tokens
            pool.refused_predicted_tokens += intended_sized(
                refused.decision, meant, self.demand_tokens
            )

    def dropped(self, rid: int) -> None:
        """A routed request the cluster refused before a replica took it (its wait bound, the
        queue's bound, no replica): 0 answered in its tenant's account, charged to capacity,
        as the server's ingress queue refusal (`QualityAccounts.handed_back`)."""
        counted = self._counted.pop(rid, None)
        if counted is not None:
            tenant, served = counted
            self.quality.of(tenant).handed_back(served)

    @property
    def counted(self) -> int:
        """Requests held to a share target the router still keeps (`dropped` may need them)."""
        return len(self._counted)

    def _prune_counted(self, cluster: Cluster) -> None:
        """Forget the counted requests the cluster has served or refused (a refusal was told
        to `dropped` first), as `_in_flight` prunes the tenant's list; the next pruning waits
        for twice what is left (amortised O(1) per request)."""
        done = cluster.done
        self._counted = {
            rid: v for rid, v in self._counted.items() if rid >= done.size or not done[rid]
        }
        self._counted_prune_at = max(PRUNE_AT, 2 * len(self._counted))

    def _demand(self, estimate: Estimate | None, budget: TokenBudget) -> float:
        """Output tokens the planner sizes for, as the server's demand meter records them
        (`planning.expected.sized_tokens` / `sized_of`)."""
        if estimate is not None:
            return sized_of(self.demand_tokens, estimate)
        return sized_tokens(self.demand_tokens, budget.p50_output_tokens, budget.p90_output_tokens)

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        try:
            spec, tenant, predicted, state = self.plan_inputs(req, cluster, now)
        except RequestError as exc:  # a body the server would refuse with a 400
            return Rejected(exc.code, exc.status)
        outcome = plan(spec, tenant, predicted, state)
        self.decisions += 1
        if isinstance(outcome, Refused):
            self._refused(outcome, req, list(state.views), cluster)
            self.quality.record(tenant.name, outcome.decision)  # counts 0, as the server's
            return Rejected(outcome.code, outcome.status)
        decision = outcome.decision
        self.opening.record(decision, now)
        served = self.quality.record(tenant.name, decision)
        if served and decision.share_of_strongest is not None:
            self._counted[req.rid] = (tenant.name, served)
            if len(self._counted) >= self._counted_prune_at:
                self._prune_counted(cluster)
        idx = self.index[outcome.profile.name]
        if req.prefix_blocks:
            pool = cluster.pools[idx]
            self.prefix.hold(
                pool.name, req.prefix_blocks, pool.spec.kv_blocks * max(1, pool.target)
            )
        tokens = req.output_tokens
        cap = decision.max_tokens
        truncated = cap is not None and cap < tokens
        if truncated:
            tokens = max(1, cap)
        limits = route_inputs.budget_limits(tenant.budgets)
        if limits:
            cost = self.prices[idx].cost_usd(req.prompt_tokens, tokens, 0)
            self.spend.add(tenant.name, cost, self.epoch + timedelta(seconds=now), limits)
        if tenant.bounds.max_concurrent_requests is not None:
            self._running.setdefault(tenant.name, []).append(req.rid)
        predicted = decision.estimate.output_tokens if decision.estimate else tokens
        est = decision.estimate
        sized = self._demand(est, outcome.predicted.budget) if est else tokens
        cluster.pools[idx].predicted_tokens += sized
        budget = outcome.predicted.budget
        return Routed(idx, tokens, truncated, predicted, budget.query_class, float(sized))


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


def queue_places(cluster: Cluster, tenant: str) -> dict[str, int]:
    """Per profile whose ingress queue holds requests: those of the tenant's priority class
    and better (`PlanState.ahead`, as the server's `IngressQueue.places`); none under Serve's
    FIFO (the whole queue)."""
    return {
        pool.name: pool.pending.waiting_through(tenant)
        for pool in cluster.pools
        if isinstance(pool.pending, ScheduledQueue) and len(pool.pending)
    }


def queue_held(cluster: Cluster) -> dict[str, int]:
    """Per pool: the requests its ingress queue bounds (`PlanState.held`, by the server's rule
    `admission.held_by_queue`: waiting in it, or seated beyond the ready replicas' batch
    slots); none under Serve's FIFO, nor for a pool with no ready replica (the server's
    ingress does not hold those requests: Serve's queue waits for the first replica, and the
    replay's queue stands in for it)."""
    held = {}
    for pool in cluster.pools:
        if isinstance(pool.pending, ScheduledQueue) and pool.ready > 0:
            slots = pool.ready * pool.spec.cap
            n = held_by_queue(len(pool.pending), pool.in_flight, slots)
            if n:
                held[pool.name] = n
    return held
