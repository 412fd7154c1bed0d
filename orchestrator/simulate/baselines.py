"""The baselines' set-ups: which profiles each uses, how they route, how they scale.

Each baseline runs in two forms:
- plain (`static`, `queue`, `round-robin`, `routellm`, `dynamo`): as each system is deployed
  out of the box, one strong profile (or every profile) for all traffic; it ignores tenants'
  `allowed_profiles` and quality floors (the report says so);
- at the policy's quality floors (`<name>-floor`): every tenant's requests go only to profiles
  it may use (`TenantPolicy.eligible_profiles`: allowed, not denied, at or above its floor,
  with replicas; not one that always reasons when the tenant forbids reasoning), sized on the
  cheapest of them per output token at full load; a prompt that profile cannot hold goes to
  the next cheapest eligible one that can (as an SRE would route long prompts), so a
  baseline refuses for context only what no profile the tenant may use holds; `routellm-floor`
  sends hard requests to the tenant's strongest eligible profile and the rest to that
  cheapest one, `round-robin-floor` rotates over the tenant's eligible profiles;
- `routellm-shared`: `routellm-floor` with the strong pools shared: of a tenant's strongest
  eligible profiles, the one the most tenants may use (then the cheapest per token), so
  tenants that could share one frontier pool do not each keep their own warm.
Scaling is the same in both forms (static: the trace's busiest minute per pool, in hindsight;
queue: Serve's queue-length policy; dynamo: the SLA planner).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.concepts import TIER_RANK, LatencySLO
from orchestrator.policy import Policy
from orchestrator.routing.reasoning import cannot_turn_off
from orchestrator.routing.views import catalog_views
from orchestrator.simulate import controllers as ctl
from orchestrator.simulate import policies as pol
from orchestrator.simulate.cluster import Cluster, Rejected, Routed
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.traffic import SimRequest

PLAIN: tuple[str, ...] = ("static", "queue", "round-robin", "routellm", "dynamo")
FLOOR_SUFFIX = "-floor"
AT_FLOORS: tuple[str, ...] = tuple(f"{b}{FLOOR_SUFFIX}" for b in PLAIN)
SHARED = "routellm-shared"
BASELINES: tuple[str, ...] = PLAIN + AT_FLOORS + (SHARED,)
ROUTELLM_ACCURACY = 0.8  # the fallback classifier's accuracy, for traffic without predictions
ROUTELLM_THRESHOLD = 0.75  # strong when P(the weak profile's tier answers well) is below this
DESCRIPTIONS = {
    "static": "strong profile, sized for the peak minute, never rescaled",
    "queue": "Ray Serve default queue-length autoscaling, strong profile",
    "round-robin": "round-robin over profiles, queue-length autoscaling",
    "routellm": "weak/strong by a threshold on the difficulty model, queue-length autoscaling",
    "dynamo": "Dynamo-style SLA planner (throughput at the TPOT SLO), strong profile",
}
for _b in PLAIN:
    DESCRIPTIONS[f"{_b}{FLOOR_SUFFIX}"] = (
        f"{DESCRIPTIONS[_b]}; each tenant on its own eligible profiles (allowed, at its floor)"
    )
DESCRIPTIONS[SHARED] = (
    f"{DESCRIPTIONS['routellm-floor']}; the strong profile the most tenants may use (shared)"
)
PLAIN_NOTE = (
    "plain baselines (static, queue, round-robin, routellm, dynamo) ignore tenants' "
    "allowed_profiles and quality floors; their '-floor' forms honour both"
)


def per_token_price(p: Profile) -> tuple[float, str]:
    return (p.price_per_replica_hour_usd / p.performance.output_tokens_per_s, p.name)


class TenantRouter:
    """Each tenant's requests to its own router (the baselines at the quality floors)."""

    def __init__(self, routers: Mapping[str, object], default: object) -> None:
        self.routers, self.default = dict(routers), default

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        return self.routers.get(req.tenant, self.default).route(req, cluster, now)  # type: ignore[attr-defined]


@dataclass
class Setup:
    """Everything one policy needs: pools' bounds, a router, a controller."""

    bounds: list[tuple[int, int]]
    router: object
    controller: object


def peak_replicas(
    requests: Sequence[SimRequest], spec: ReplicaSpec, slo: LatencySLO, window_s: float = 60.0
) -> int:
    """Replicas of `spec` the busiest `window_s` of the trace needs at the SLO (hindsight):
    decode time share at the SLO's capacity plus prefill time share, as Dynamo sizes."""
    if not requests:
        return 1
    buckets: dict[int, list[int]] = {}
    for r in requests:
        b = buckets.setdefault(int(r.arrival_s // window_s), [0, 0, 0])
        b[0] += 1
        b[1] += r.output_tokens
        b[2] += r.prompt_tokens
    _, decode = spec.capacity(slo, *mean_sizes(requests))
    prefill = spec.perf.prefill_tokens_per_s
    need = max(o / window_s / decode + p / window_s / prefill for _, o, p in buckets.values())
    return max(1, math.ceil(need))


def mean_sizes(requests: Sequence[SimRequest]) -> tuple[float, float]:
    """(mean prompt tokens, mean output tokens) of the traffic."""
    if not requests:
        return 1.0, 1.0
    n = len(requests)
    return sum(r.prompt_tokens for r in requests) / n, sum(r.output_tokens for r in requests) / n


class _Plan:
    """Which profile(s) each tenant's requests may go to under one baseline."""

    def __init__(
        self, catalog: Catalog, policy: Policy, floors: bool, *, shared: bool = False
    ) -> None:
        self.profiles = list(catalog.profiles)
        self.index = {p.name: i for i, p in enumerate(self.profiles)}
        self.strong = pol.strong_profile(catalog)
        self.weak = pol.weak_profile(catalog)
        self.floors = floors
        self.tenants: dict[str, list[Profile]] = {}
        if floors:
            views = {v.name: v for v in catalog_views(catalog)}
            for t in policy.reachable_tenants():
                names = set(t.eligible_profiles("standard"))
                if not t.limits("standard").reasoning.allowed:  # as the router's hard filter
                    names = {n for n in names if not cannot_turn_off(views[n])}
                own = [p for p in self.profiles if p.name in names]
                self.tenants[t.name] = own or [self.strong]
        # how many tenants may use each profile (`shared`: the strong pool most can use)
        self.users = {p.name: 0 for p in self.profiles}
        for own in self.tenants.values() if shared else ():
            for p in own:
                self.users[p.name] += 1

    def cheapest(self, own: list[Profile]) -> Profile:
        return min(own, key=per_token_price)

    def strongest(self, own: list[Profile]) -> Profile:
        top = max(TIER_RANK[p.quality.tier] for p in own)
        return min(
            (p for p in own if TIER_RANK[p.quality.tier] == top),
            key=lambda p: (-self.users[p.name], per_token_price(p)),
        )

    def fixed(self, p: Profile) -> pol.FixedRouter:
        return pol.FixedRouter(self.index[p.name], p)

    def by_price(self, own: list[Profile]) -> ContextSpill:
        """The cheapest of `own` per output token, then the next cheapest that holds a prompt
        it cannot (the floor forms of static, queue and dynamo)."""
        return ContextSpill([self.fixed(p) for p in sorted(own, key=per_token_price)])


class ContextSpill:
    """Each request to the first of `routers` whose profile holds its prompt."""

    def __init__(self, routers: Sequence[pol.FixedRouter]) -> None:
        self.routers = list(routers)

    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected:
        for r in self.routers:
            if req.prompt_tokens < r.max_len:
                return r.route(req, cluster, now)
        return self.routers[0].route(req, cluster, now)


def build(
    name: str,
    catalog: Catalog,
    policy: Policy,
    requests: Sequence[SimRequest],
    specs: list[ReplicaSpec],
    seed: int,
    success: np.ndarray | None = None,
    routellm_threshold: float = ROUTELLM_THRESHOLD,
) -> Setup:
    """The set-up of baseline `name` (one of `BASELINES`). `success` (requests x tiers, the
    predicted P(tier answers well), NaN where unknown) drives `routellm`'s threshold."""
    shared = name == SHARED
    floors = shared or name.endswith(FLOOR_SUFFIX)
    kind = "routellm" if shared else name.removesuffix(FLOOR_SUFFIX)
    if kind not in PLAIN:
        raise ValueError(f"unknown baseline {name!r}")
    plan = _Plan(catalog, policy, floors, shared=shared)
    slo = pol.tightest_slo(policy)
    n = len(plan.profiles)
    own = [(policy.scaling[p.name].min_replicas, policy.scaling[p.name].max_replicas)
           for p in plan.profiles]  # fmt: skip
    target_ongoing = [s.capacity(slo, *mean_sizes(requests))[0] for s in specs]
    hard = None
    if kind == "routellm":
        hard = _hard_flags(requests, plan, seed, success, routellm_threshold)

    def route_of(tenant_profiles: list[Profile]) -> object:
        if kind in ("static", "queue", "dynamo"):
            return plan.by_price(tenant_profiles) if floors else plan.fixed(plan.strong)
        if kind == "round-robin":
            used = (
                tenant_profiles
                if floors
                else [p for p in plan.profiles if own[plan.index[p.name]][1] > 0]
            )
            return pol.RoundRobinRouter([plan.index[p.name] for p in used], used)
        weak = plan.cheapest(tenant_profiles) if floors else plan.weak
        strong = plan.strongest(tenant_profiles) if floors else plan.strong
        return pol.ThresholdRouter(plan.fixed(weak), plan.fixed(strong), hard)

    default = route_of(list(plan.profiles))
    routers = {t: route_of(ps) for t, ps in plan.tenants.items()}
    router = TenantRouter(routers, default) if floors else default
    routed_to = _assign(requests, router, n)
    used = sorted({i for i, reqs in routed_to.items() if reqs})
    if kind == "static":
        peaks = {i: peak_replicas(routed_to[i], specs[i], slo) for i in used}
        bounds = [(peaks[i], peaks[i]) if i in peaks else (0, 0) for i in range(n)]
        return Setup(bounds, router, ctl.StaticController([b[0] for b in bounds]))
    peak = max((peak_replicas(routed_to[i], specs[i], slo) for i in used), default=1)
    bounds = [(max(1, own[i][0]), max(own[i][1], peak)) if i in used else (0, 0) for i in range(n)]
    start = [1 if i in used else 0 for i in range(n)]
    if kind == "dynamo":
        return Setup(bounds, router, ctl.DynamoSLAController(start, slo))
    return Setup(bounds, router, ctl.QueueLengthController(start, target_ongoing))


def _hard_flags(
    requests: Sequence[SimRequest],
    plan: _Plan,
    seed: int,
    success: np.ndarray | None = None,
    threshold: float = ROUTELLM_THRESHOLD,
) -> np.ndarray:
    """RouteLLM's threshold router on our difficulty model: hard when the predicted success on
    the weak profile's tier is below `threshold` (the comparison isolates the router). Traffic
    without predictions: a classifier right `ROUTELLM_ACCURACY` of the time about "needs more
    than the weak profile's tier" (the same draws for the plain and the floor form)."""
    weak_rank = TIER_RANK[plan.weak.quality.tier]
    if success is not None and len(success) and not np.isnan(success[:, weak_rank]).all():
        return success[:, weak_rank] < threshold  # NaN rows (no prediction): weak
    rng = np.random.default_rng([seed, 5])
    truly_hard = np.array([TIER_RANK.get(r.tier, 0) > weak_rank for r in requests], dtype=bool)
    flip = rng.random(len(requests)) >= ROUTELLM_ACCURACY
    return truly_hard ^ flip


def _assign(requests: Sequence[SimRequest], router: object, n: int) -> dict[int, list]:
    """Which pool each request would go to (for sizing; a router that rotates is reset)."""
    from copy import deepcopy

    probe = deepcopy(router)
    out: dict[int, list] = {i: [] for i in range(n)}
    for r in requests:
        res = probe.route(r, None, r.arrival_s)  # type: ignore[attr-defined, arg-type]
        if isinstance(res, Routed):
            out[res.profile].append(r)
    return out


def describe(catalog: Catalog, policy: Policy, requests: Sequence[SimRequest],
             specs: list[ReplicaSpec], names: Sequence[str]) -> list[str]:  # fmt: skip
    """Notes naming the profiles the chosen baselines use."""
    notes = []
    if any(n in PLAIN for n in names):
        strong, weak = pol.strong_profile(catalog), pol.weak_profile(catalog)
        slo = pol.tightest_slo(policy)
        n_peak = peak_replicas(
            requests, specs[[p.name for p in catalog.profiles].index(strong.name)], slo
        )
        notes.append(
            f"strong profile {strong.name} (static: {n_peak} replicas for the peak minute); "
            f"weak profile {weak.name}; queue-length target_ongoing_requests = the largest batch "
            f"meeting TTFT {slo.ttft_p95_ms} / TPOT {slo.tpot_p95_ms} ms for the mean request"
        )
        notes.append(PLAIN_NOTE)
    if any(n in AT_FLOORS for n in names):
        plan = _Plan(catalog, policy, True)
        parts = []
        for t, ps in plan.tenants.items():
            first = plan.cheapest(ps)
            longer = max(ps, key=lambda p: (p.max_model_len, -per_token_price(p)[0]))
            spill = (
                f", prompts over {first.max_model_len} tokens: {longer.name}"
                if longer.max_model_len > first.max_model_len
                else ""
            )
            parts.append(f"{t}: {first.name}{spill} (strongest {plan.strongest(ps).name})")
        notes.append(
            "at the quality floors, each tenant's cheapest eligible profile: " + "; ".join(parts)
        )
    return notes
