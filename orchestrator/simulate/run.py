"""Run every policy over the same catalog and traffic: `simulate(...) -> SimResult`.

The predictor runs once per distinct request body, before any policy (its output does not
depend on the policy); every policy then replays the same requests on a fresh cluster.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.catalog.schema import Catalog
from orchestrator.concepts import TIER_RANK
from orchestrator.planning.types import PlannerKnobs, ScalingDecision
from orchestrator.policy import Policy
from orchestrator.predict import Predictor
from orchestrator.request import route_inputs
from orchestrator.request.candidates import candidates_for_model
from orchestrator.routing.types import TokenBudget
from orchestrator.scheduling import SchedulingSettings
from orchestrator.simulate import baselines as bl
from orchestrator.simulate import controllers as ctl
from orchestrator.simulate import policies as pol
from orchestrator.simulate.baselines import BASELINES
from orchestrator.simulate.cluster import Cluster, Outcome
from orchestrator.simulate.metrics import Targets, measured_only, prediction_error, summarize
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.sim_request import split_at
from orchestrator.simulate.traffic import SimRequest

ALL_POLICIES: tuple[str, ...] = ("ours", "oracle", "ours-constant", *BASELINES)
# what `ours` is fed (`--prediction`): the product's predictor, one constant prediction for
# every request (the median of the predictor's), or the true lengths (the oracle's inputs)
PREDICTIONS: tuple[str, ...] = ("model", "constant", "truth")
SCHEDULED = ("ours", "oracle", "ours-constant")  # run with the product's scheduler
DESCRIPTIONS = {
    "ours": "predictor + decide + scheduler + controller",
    "ours-constant": "ours fed one constant prediction (the median) for every request",
    "oracle": "decide + controller fed the true length and needed tier",
    **bl.DESCRIPTIONS,
}


@dataclass
class PolicyRun:
    name: str
    description: str
    outcome: Outcome
    metrics: dict[str, Any]
    wall_s: float
    # the product planner's decision per tick (ours, the oracle); empty for baselines
    planner: list[ScalingDecision] = field(default_factory=list)


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

    def value_of_prediction(self) -> dict[str, dict[str, float | None]]:
        """Per policy: its mean end-to-end latency and cost relative to ours fed one constant
        prediction (`ours-constant`; -0.25 = 25 % lower). Empty when that was not run."""
        base = self.policies.get("ours-constant")
        if base is None:
            return {}

        def change(new: float | None, old: float | None) -> float | None:
            return None if new is None or not old else new / old - 1.0

        return {
            name: {
                "e2e_mean": change(run.metrics["e2e_mean_ms"], base.metrics["e2e_mean_ms"]),
                "cost": change(run.metrics["cost_usd"], base.metrics["cost_usd"]),
            }
            for name, run in self.policies.items()
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "value_of_prediction": self.value_of_prediction(),
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
    calibration: Sequence[SimRequest] = (),
) -> pol.Prepared:
    """The product's prediction for every request (shared by all policies).

    Each distinct body is featurized once; a request carrying a recorded prediction (decision
    log replay) keeps it. With `feedback_lag_s`, the predictor learns online
    as a running server does: every request's true length is fed to `Predictor.observe`
    `feedback_lag_s` after it arrived, under the profile whose prediction the router reads
    (the first candidate); None predicts every request with the shipped priors only. It
    learns on a fork (`Predictor.fork`): the caller's predictor is left as it was, so replays
    that share one do not depend on their order or learn each other's true lengths.
    `calibration`: earlier requests (arriving before `requests`, on the same clock) whose
    true lengths the fork learns first, each `feedback_lag_s` after it arrived (all before
    the first request without online learning); they are not predicted or returned: a
    server's calibration learned on traffic outside the measured window.
    """
    predictor = predictor.fork() if predictor is not None else Predictor(store=None)
    featurized: dict[Any, Any] = {}
    feedback: list[tuple[float, int, Any, Any, int]] = []
    lag = feedback_lag_s if feedback_lag_s is not None else -np.inf
    for i, req in enumerate(calibration):
        key = req.body_key if req.body_key is not None else id(req.body)
        hit = featurized.get(key)
        if hit is None:
            first = candidates_for_model(req.body.get("model"), catalog)[0]
            hit = featurized[key] = (predictor.featurize(req.body), first)
        item = (req.arrival_s + lag, -1 - i, hit[1], hit[0].features, req.output_tokens)
        heapq.heappush(feedback, item)
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


def constant_prediction(prepared: pol.Prepared) -> pol.Prepared:
    """Every request gets the same token budget: the median of the predictor's p50, p90 and
    reasoning figures, and its most frequent class (the value of prediction is measured
    against this)."""
    budgets = prepared.budgets
    if not budgets:
        return prepared

    def median(values: list[float]) -> float:
        return float(np.median(values))

    classes = [b.query_class for b in budgets]
    p50 = round(median([b.p50_output_tokens for b in budgets]))
    one = TokenBudget(
        p50_output_tokens=p50,
        p90_output_tokens=max(p50, round(median([b.p90_output_tokens for b in budgets]))),
        reasoning_probability=median([b.reasoning_probability for b in budgets]),
        reasoning_tokens=round(median([b.reasoning_tokens for b in budgets])),
        query_class=max(set(classes), key=classes.count),
    )
    return pol.Prepared([one] * len(budgets))


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


def our_controller(
    policy: Policy,
    start: list[int],
    count_refused: bool = True,
    targets: Targets | None = None,
    knobs: PlannerKnobs | None = None,
) -> ctl.PlannerController:
    """The product's planner, judging finished requests against their own `targets` (as the
    server's ingress does)."""
    return ctl.PlannerController(
        policy, start, count_refused=count_refused, targets=targets, knobs=knobs
    )


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
    prediction: str = "model",
    routellm_threshold: float = bl.ROUTELLM_THRESHOLD,
    targets: Targets | None = None,
    constant_feed: Callable[[pol.Prepared], pol.Prepared] = constant_prediction,
    demand_tokens: str | None = None,
    planner_knobs: PlannerKnobs | None = None,
) -> dict[str, bl.Setup]:
    profiles = list(catalog.profiles)
    own = [
        (policy.scaling[p.name].min_replicas, policy.scaling[p.name].max_replicas) for p in profiles
    ]
    own_start = [policy.scaling[p.name].initial_replicas for p in profiles]
    out: dict[str, bl.Setup] = {}
    for name in names:
        if name in SCHEDULED:
            fed = prepared
            if name == "ours-constant" or (name == "ours" and prediction == "constant"):
                fed = constant_feed(prepared)
            oracle = name == "oracle" or (name == "ours" and prediction == "truth")
            router = pol.DecideRouter(
                catalog, policy, fed, oracle=oracle, demand_tokens=demand_tokens
            )
            controller = our_controller(policy, own_start, count_refused, targets, planner_knobs)
            out[name] = bl.Setup(own, router, controller)
        elif name in BASELINES:
            out[name] = bl.build(
                name,
                catalog,
                policy,
                requests,
                specs,
                seed,
                success_matrix(prepared.budgets),
                routellm_threshold,
            )
        else:
            raise ValueError(f"unknown policy {name!r}; choose from {', '.join(ALL_POLICIES)}")
    notes.extend(bl.describe(catalog, policy, requests, specs, names))
    return out


def speed_of(speed: float | Mapping[str, float], profile: str) -> float:
    """A profile's real speed factor (see `simulate`)."""
    return speed.get(profile, 1.0) if isinstance(speed, Mapping) else float(speed)


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
    prediction: str = "model",
    scheduler: bool = True,
    speed: float | Mapping[str, float] = 1.0,
    routellm_threshold: float = bl.ROUTELLM_THRESHOLD,
    constant_feed: Callable[[pol.Prepared], pol.Prepared] | None = None,
    demand_tokens: str | None = None,
    planner_knobs: PlannerKnobs | None = None,
    calibrate_s: float = 0.0,
) -> SimResult:
    """Replay `requests` under each named policy (see `ALL_POLICIES`); deterministic per seed.

    With `warmup_s`, requests arriving earlier and replica time before it are simulated but
    left out of the metrics (the cluster reaches the load's scale first). `count_refused`:
    ours and the oracle plan for the requests their router refused for capacity, as the
    server's controller does (False: routed load only, the behaviour before it). `speed`: the
    replicas' real throughput against the catalog's figures, for all profiles or per profile
    name (others 1.0); routers, planners and the baselines' sizing keep the figures.
    `prediction` (`PREDICTIONS`) is what `ours` is fed; `scheduler`: ours, the oracle and
    ours-constant run with the product's scheduler (False: Serve's and vLLM's FIFO queues).
    `routellm_threshold`: the RouteLLM-style baseline sends a request to the strong profile
    when its predicted success on the weak profile's tier is below this. `constant_feed`:
    what ours-constant is fed, from the predictor's budgets (default `constant_prediction`;
    an ablation swaps in another, e.g. one constant at another length). `demand_tokens`: what
    ours' planner sizes output from (`policies.DEMAND_TOKENS`; None: the policy's
    `autoscaling.demand_sizing`); `planner_knobs`: the planner's internal tunables (ablations).
    `calibrate_s`: the requests arriving in the first S seconds only teach the predictor
    their true lengths (`prepare`'s `calibration`, a warm start from traffic outside the
    measured window); the rest is replayed from a fresh cluster at time 0 and measured
    (`SimResult.requests`). Tenants are drawn before the split, as without it."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; choose from {', '.join(PREDICTIONS)}")
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    assign_tenants(requests, policy, tenant_weights, seed)
    calibration: list[SimRequest] = []
    if calibrate_s > 0:
        calibration, requests = split_at(requests, calibrate_s)
        if not requests:
            raise ValueError(f"no request arrives after the {calibrate_s:g} s calibration window")
    prepared = prepare(
        catalog, requests, predictor, feedback_lag_s=feedback_lag_s, calibration=calibration
    )
    wall["predict"] = time.perf_counter() - t0
    cpu["predict"] = time.process_time() - c0
    targets = targets_for(requests, policy, prepared)
    figures = [ReplicaSpec.of(p) for p in catalog.profiles]
    specs = [ReplicaSpec.of(p, speed=speed_of(speed, p.name)) for p in catalog.profiles]
    names = [p.name for p in catalog.profiles]
    ranks = np.array([TIER_RANK[p.quality.tier] for p in catalog.profiles])
    notes: list[str] = []
    setups = _setups(
        policies,
        catalog,
        policy,
        requests,
        prepared,
        figures,
        seed,
        notes,
        count_refused,
        prediction,
        routellm_threshold,
        targets,
        constant_feed or constant_prediction,
        demand_tokens,
        planner_knobs,
    )
    if prediction != "model":
        notes.append(
            f"ours is fed the {'true lengths' if prediction == 'truth' else 'constant prediction'}"
        )
    scheduling = SchedulingSettings.of(policy) if scheduler else None
    measured = np.array([r.arrival_s >= warmup_s for r in requests])
    if any(s.speed != 1.0 for s in specs):
        notes.append(
            "real speed vs the catalog's figures: "
            + ", ".join(f"{s.name} x{s.speed:g}" for s in specs if s.speed != 1.0)
        )
    if calibration:
        notes.append(
            f"calibration: the predictor learned the true lengths of the {len(calibration)} "
            f"requests of the first {calibrate_s:g} s, which are neither replayed nor measured"
        )
    if warmup_s > 0:
        notes.append(f"warm-up: the first {warmup_s:g} s are simulated but not measured or billed")
    runs: dict[str, PolicyRun] = {}
    for name, setup in setups.items():
        t1, c1 = time.perf_counter(), time.process_time()
        cluster = Cluster(
            specs,
            setup.bounds,
            seed=seed,
            queue_timeout_s=queue_timeout_s,
            scheduling=scheduling if name in SCHEDULED else None,
        )
        report = (lambda i, name=name: progress(name, i, len(requests))) if progress else None
        outcome = cluster.run(
            requests, setup.router, setup.controller, progress=report, billed_from_s=warmup_s
        )
        if warmup_s > 0:
            metrics = summarize(*measured_only(outcome, targets, measured), names, ranks)
        else:
            metrics = summarize(outcome, targets, names, ranks)
        planner = (
            setup.controller.decisions
            if isinstance(setup.controller, ctl.PlannerController)
            else []
        )
        runs[name] = PolicyRun(
            name, DESCRIPTIONS[name], outcome, metrics, time.perf_counter() - t1, planner
        )
        wall[name] = runs[name].wall_s
        cpu[name] = time.process_time() - c1
    wall["total"] = time.perf_counter() - t0
    cpu["total"] = time.process_time() - c0
    judged = (
        measured_only(runs[next(iter(runs))].outcome, targets, measured)[1] if runs else targets
    )
    return SimResult(runs, names, targets, requests, prediction_error(judged), wall, notes, cpu)
