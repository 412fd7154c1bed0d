"""Run every policy over the same catalog and traffic: `simulate(...) -> SimResult`.

The predictor runs once per distinct request body, before any policy (its output does not
depend on the policy); every policy then replays the same requests on a fresh cluster.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.catalog.schema import Catalog
from orchestrator.concepts import TIER_RANK, LatencySLO
from orchestrator.policy import Policy
from orchestrator.predict import Predictor
from orchestrator.serving import route_inputs
from orchestrator.serving.profile_selection import candidates_for_model
from orchestrator.simulate import controllers as ctl
from orchestrator.simulate import policies as pol
from orchestrator.simulate.cluster import Cluster, Outcome
from orchestrator.simulate.metrics import Targets, measured_only, prediction_error, summarize
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.traffic import SimRequest

BASELINES: tuple[str, ...] = ("static", "queue", "round-robin", "routellm", "dynamo")
ALL_POLICIES: tuple[str, ...] = ("ours", "oracle", *BASELINES)
DESCRIPTIONS = {
    "ours": "predictor + decide + controller",
    "oracle": "decide + controller fed the true length and needed tier",
    "static": "strong profile, sized for the peak minute, never rescaled",
    "queue": "Ray Serve default queue-length autoscaling, strong profile",
    "round-robin": "round-robin over profiles, queue-length autoscaling",
    "routellm": "weak/strong by a threshold on the difficulty model, queue-length autoscaling",
    "dynamo": "Dynamo-style SLA planner (throughput at the TPOT SLO), strong profile",
}
ROUTELLM_THRESHOLD = 0.75  # strong when P(the weak profile's tier answers well) is below


@dataclass
class PolicyRun:
    name: str
    description: str
    outcome: Outcome
    metrics: dict[str, Any]
    wall_s: float


@dataclass
class SimResult:
    policies: dict[str, PolicyRun]
    profiles: list[str]
    targets: Targets
    requests: list[SimRequest]
    prediction: dict[str, float]
    wall_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # process CPU time (one core)

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": {
                name: {
                    "description": run.description,
                    "wall_s": round(run.wall_s, 3),
                    **run.metrics,
                }
                for name, run in self.policies.items()
            },
            "profiles": self.profiles,
            "requests": len(self.requests),
            "prediction_error": self.prediction,
            "wall_s": {k: round(v, 3) for k, v in self.wall_s.items()},
            "cpu_s": {k: round(v, 3) for k, v in self.cpu_s.items()},
            "notes": self.notes,
        }


def prepare(
    catalog: Catalog,
    requests: Sequence[SimRequest],
    predictor: Predictor | None = None,
    *,
    feedback_lag_s: float | None = 30.0,
) -> pol.Prepared:
    """The product's prediction for every request (shared by all policies).

    Each distinct body is featurized once; a request carrying a recorded prediction (decision
    log replay) keeps it. With `feedback_lag_s`, the predictor learns online
    as a running server does: every request's true length is fed to `Predictor.observe`
    `feedback_lag_s` after it arrived, under the profile whose prediction the router reads
    (the first candidate); None predicts every request with the shipped priors only.
    """
    predictor = predictor or Predictor(store=None)
    featurized: dict[Any, Any] = {}
    feedback: list[tuple[float, int, Any, Any, int]] = []
    shared: dict[tuple, Any] = {}  # equal budgets share one object (memory at 100x)
    budgets = []
    for req in requests:
        while feedback and feedback[0][0] <= req.arrival_s:
            _, _, profile, features, tokens = heapq.heappop(feedback)
            predictor.observe(profile, features, tokens)
        done = None
        if req.prediction is not None:  # recorded by the server's predictor (decision log)
            pred = req.prediction
        else:
            key = req.body_key if req.body_key is not None else id(req.body)
            hit = featurized.get(key)
            if hit is None:
                first = candidates_for_model(req.body.get("model"), catalog)[0]
                hit = featurized[key] = (predictor.featurize(req.body), first)
            done, first = hit
            pred = predictor.predict_featurized(done, first)
        if req.prompt_tokens < 0:
            req.prompt_tokens = pred.prompt_tokens
        bkey = (
            pred.p50_tokens,
            pred.p90_tokens,
            pred.reasoning_probability,
            pred.reasoning_tokens,
            pred.query_class,
            tuple(sorted((pred.tier_success or {}).items())),
        )
        budget = shared.get(bkey)
        if budget is None:
            budget = shared[bkey] = route_inputs.token_budget(pred)
        budgets.append(budget)
        if feedback_lag_s is not None and done is not None:
            heapq.heappush(
                feedback,
                (req.arrival_s + feedback_lag_s, req.rid, first, done.features, req.output_tokens),
            )
    return pol.Prepared(budgets)


def assign_tenants(
    requests: Sequence[SimRequest], policy: Policy, weights: Mapping[str, float] | None, seed: int
) -> None:
    """Give requests without a tenant one of the policy's tenants (by weight, else uniformly)."""
    names = [t.name for t in policy.reachable_tenants()]
    if weights:
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(
                f"unknown tenant(s) {', '.join(unknown)}; policy has {', '.join(names)}"
            )
        names = list(weights)
    if len(names) <= 1 and not weights:
        return
    p = np.array([weights[n] for n in names] if weights else [1.0] * len(names), dtype=float)
    p /= p.sum()
    rng = np.random.default_rng([seed, 3])
    pick = rng.choice(len(names), size=len(requests), p=p)
    for req, k in zip(requests, pick, strict=True):
        if req.tenant == "default":
            req.tenant = names[k]


def targets_for(requests: Sequence[SimRequest], policy: Policy, prepared: pol.Prepared) -> Targets:
    n = len(requests)
    lim = np.full((3, n), np.inf)
    cache: dict[tuple[str, str], tuple[float, float, float]] = {}
    for i, req in enumerate(requests):
        key = (req.tenant, prepared.budgets[i].query_class)
        got = cache.get(key)
        if got is None:
            lat = pol.tenant_of(policy, req.tenant).limits(key[1]).latency  # type: ignore[arg-type]
            got = cache[key] = tuple(
                v / 1000.0 if v is not None else np.inf
                for v in (lat.ttft_p95_ms, lat.tpot_p95_ms, lat.e2e_p95_ms)
            )
        lim[:, i] = got
    return Targets(
        ttft_s=lim[0],
        tpot_s=lim[1],
        e2e_s=lim[2],
        need_rank=np.array([TIER_RANK.get(r.tier, 0) for r in requests]),
        tenants=np.array([r.tenant for r in requests]),
        output_tokens=np.array([r.output_tokens for r in requests]),
        predicted_p50=np.array([b.p50_output_tokens for b in prepared.budgets]),
        predicted_p90=np.array([b.p90_output_tokens for b in prepared.budgets]),
        success=success_matrix(prepared.budgets),
    )


def success_matrix(budgets: Sequence[Any]) -> np.ndarray:
    """n x tiers (TIER_RANK order) of predicted P(tier answers well); NaN rows: no prediction."""
    tiers = sorted(TIER_RANK, key=TIER_RANK.__getitem__)
    out = np.full((len(budgets), len(tiers)), np.nan)
    for i, b in enumerate(budgets):
        if b.tier_success:
            out[i] = [b.tier_success.get(tier, np.nan) for tier in tiers]
    return out


def mean_sizes(requests: Sequence[SimRequest]) -> tuple[float, float]:
    """(mean prompt tokens, mean output tokens) of the traffic."""
    if not requests:
        return 1.0, 1.0
    n = len(requests)
    return sum(r.prompt_tokens for r in requests) / n, sum(r.output_tokens for r in requests) / n


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


def _our_controller(
    policy: Policy,
    start: list[int],
    target_ongoing: list[int],
    notes: list[str],
    count_refused: bool = True,
):
    """The product's planner; before it exists, Serve's queue-length policy (said in the notes)."""
    try:
        return ctl.PlannerController(policy, start, count_refused=count_refused)
    except ImportError:
        note = "orchestrator.planning is absent: ours/oracle scale with the queue-length policy"
        if note not in notes:
            notes.append(note)
        return ctl.QueueLengthController(start, target_ongoing)


class _Setup:
    """Everything one policy needs: pools' bounds, a router, a controller."""

    def __init__(self, bounds, router, controller) -> None:
        self.bounds, self.router, self.controller = bounds, router, controller


def _setups(
    names: Sequence[str],
    catalog: Catalog,
    policy: Policy,
    requests: Sequence[SimRequest],
    prepared: pol.Prepared,
    specs: list[ReplicaSpec],
    seed: int,
    notes: list[str],
    count_refused: bool = True,
    routellm_threshold: float = ROUTELLM_THRESHOLD,
) -> dict[str, _Setup]:
    profiles = list(catalog.profiles)
    index = {p.name: i for i, p in enumerate(profiles)}
    slo = pol.tightest_slo(policy)
    sizes = mean_sizes(requests)
    target_ongoing = [s.capacity(slo, *sizes)[0] for s in specs]
    strong = pol.strong_profile(catalog)
    weak = pol.weak_profile(catalog)
    si, wi = index[strong.name], index[weak.name]
    n_peak = peak_replicas(requests, specs[si], slo)
    own = [
        (policy.scaling[p.name].min_replicas, policy.scaling[p.name].max_replicas) for p in profiles
    ]
    own_start = [
        max(lo, min(hi, p.replicas.start)) for p, (lo, hi) in zip(profiles, own, strict=True)
    ]

    def only(used: Sequence[int], start: int = 1) -> tuple[list[tuple[int, int]], list[int]]:
        bounds = [
            (max(1, own[i][0]), max(own[i][1], n_peak)) if i in used else (0, 0)
            for i in range(len(profiles))
        ]
        return bounds, [start if i in used else 0 for i in range(len(profiles))]

    out: dict[str, _Setup] = {}
    for name in names:
        if name in ("ours", "oracle"):
            router = pol.DecideRouter(catalog, policy, prepared, oracle=name == "oracle")
            controller = _our_controller(policy, own_start, target_ongoing, notes, count_refused)
            out[name] = _Setup(own, router, controller)
        elif name == "static":
            bounds = [(n_peak, n_peak) if i == si else (0, 0) for i in range(len(profiles))]
            out[name] = _Setup(
                bounds, pol.FixedRouter(si, strong), ctl.StaticController([b[0] for b in bounds])
            )
        elif name == "queue":
            bounds, start = only([si])
            out[name] = _Setup(
                bounds,
                pol.FixedRouter(si, strong),
                ctl.QueueLengthController(start, target_ongoing),
            )
        elif name == "round-robin":
            used = [i for i in range(len(profiles)) if own[i][1] > 0]
            bounds, start = only(used)
            router = pol.RoundRobinRouter(used, [profiles[i] for i in used])
            out[name] = _Setup(bounds, router, ctl.QueueLengthController(start, target_ongoing))
        elif name == "routellm":
            bounds, start = only([wi, si])
            # the same difficulty model as ours: P(the weak tier answers well) < threshold
            weak_success = success_matrix(prepared.budgets)[:, TIER_RANK[weak.quality.tier]]
            hard = weak_success < routellm_threshold  # NaN (no prediction): weak
            router = pol.ThresholdRouter(
                pol.FixedRouter(wi, weak), pol.FixedRouter(si, strong), hard
            )
            out[name] = _Setup(bounds, router, ctl.QueueLengthController(start, target_ongoing))
        elif name == "dynamo":
            bounds, start = only([si])
            out[name] = _Setup(
                bounds, pol.FixedRouter(si, strong), ctl.DynamoSLAController(start, slo)
            )
        else:
            raise ValueError(f"unknown policy {name!r}; choose from {', '.join(ALL_POLICIES)}")
    notes.append(
        f"strong profile {strong.name} (static: {n_peak} replicas for the peak minute); "
        f"weak profile {weak.name}; queue-length target_ongoing_requests = the largest batch "
        f"meeting TTFT {slo.ttft_p95_ms} / TPOT {slo.tpot_p95_ms} ms for the mean request"
    )
    return out


def simulate(
    catalog: Catalog,
    policy: Policy,
    requests: list[SimRequest],
    *,
    policies: Sequence[str] = ALL_POLICIES,
    seed: int = 0,
    tenant_weights: Mapping[str, float] | None = None,
    predictor: Predictor | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    queue_timeout_s: float = 600.0,
    feedback_lag_s: float | None = 30.0,
    warmup_s: float = 0.0,
    count_refused: bool = True,
    routellm_threshold: float = ROUTELLM_THRESHOLD,
) -> SimResult:
    """Replay `requests` under each named policy (see `ALL_POLICIES`); deterministic per seed.

    With `warmup_s`, requests arriving earlier and replica time before it are simulated but
    left out of the metrics (the cluster reaches the load's scale first). `count_refused`:
    ours and the oracle plan for the requests their router refused for capacity, as the
    server's controller does (False: routed load only, the behaviour before it).
    `routellm_threshold`: the RouteLLM-style baseline sends a request to the strong profile
    when its predicted success on the weak profile's tier is below this."""
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    assign_tenants(requests, policy, tenant_weights, seed)
    prepared = prepare(catalog, requests, predictor, feedback_lag_s=feedback_lag_s)
    wall["predict"] = time.perf_counter() - t0
    cpu["predict"] = time.process_time() - c0
    targets = targets_for(requests, policy, prepared)
    specs = [ReplicaSpec.of(p) for p in catalog.profiles]
    names = [p.name for p in catalog.profiles]
    ranks = np.array([TIER_RANK[p.quality.tier] for p in catalog.profiles])
    notes: list[str] = []
    setups = _setups(
        policies,
        catalog,
        policy,
        requests,
        prepared,
        specs,
        seed,
        notes,
        count_refused,
        routellm_threshold,
    )
    measured = np.array([r.arrival_s >= warmup_s for r in requests])
    if warmup_s > 0:
        notes.append(f"warm-up: the first {warmup_s:g} s are simulated but not measured or billed")
    runs: dict[str, PolicyRun] = {}
    for name, setup in setups.items():
        t1, c1 = time.perf_counter(), time.process_time()
        cluster = Cluster(specs, setup.bounds, seed=seed, queue_timeout_s=queue_timeout_s)
        report = (lambda i, name=name: progress(name, i, len(requests))) if progress else None
        outcome = cluster.run(
            requests, setup.router, setup.controller, progress=report, billed_from_s=warmup_s
        )
        if warmup_s > 0:
            metrics = summarize(*measured_only(outcome, targets, measured), names, ranks)
        else:
            metrics = summarize(outcome, targets, names, ranks)
        runs[name] = PolicyRun(name, DESCRIPTIONS[name], outcome, metrics, time.perf_counter() - t1)
        wall[name] = runs[name].wall_s
        cpu[name] = time.process_time() - c1
    wall["total"] = time.perf_counter() - t0
    cpu["total"] = time.process_time() - c0
    judged = (
        measured_only(runs[next(iter(runs))].outcome, targets, measured)[1] if runs else targets
    )
    return SimResult(runs, names, targets, requests, prediction_error(judged), wall, notes, cpu)
