"""Per-policy metrics from an `Outcome` (pure numpy).

Definitions:
- SLO attainment: share of ALL requests (rejected ones count as misses) whose TTFT, TPOT and
  end-to-end latency each meet the p95 targets of their tenant for their request class (the
  class the predictor gives; the same for every policy);
- judged SLO attainment: the same share among the requests the server's attainment judges
  (`orchestrator.attainment.judged`: a refusal with a 4xx, a bound, cost cap or budget the
  policy sets, is left out; a 5xx refusal or a 429 for capacity (`server_overloaded`,
  `queue_timeout`) stays a miss), beside the first, never instead;
- quality: share of all requests served on a profile whose tier is at least the tier their
  difficulty needs (`SimRequest.tier`); truncated answers count as served;
- expected quality: the mean over requests of the predicted probability (`tier_success`) that
  the tier which served each answers it well (a refused request counts 0), beside the same mean
  for always-strongest routing (the catalog's top tier) and their ratio, overall and per tenant;
- TPOT = (e2e - TTFT) / (tokens - 1); cost = replica-hours x $/hour, start-up and drain included;
- matched latency (`matched_latency`, comparing policies): mean e2e and TTFT over the requests
  EVERY compared policy served (one set for all, so a policy that refuses more does not leave
  its slowest requests out of its mean), and mean e2e over all requests with each refusal
  counted at a stated penalty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.attainment import judged
from orchestrator.simulate.cluster import Outcome


@dataclass(frozen=True)
class Targets:
    """Per-request thresholds and needs, shared by every policy (inf = no target)."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    need_rank: np.ndarray
    tenants: np.ndarray  # tenant name per request
    output_tokens: np.ndarray  # truth
    predicted_p50: np.ndarray
    predicted_p90: np.ndarray
    success: np.ndarray  # n x tiers (TIER_RANK order): P(tier answers well); NaN = no prediction


def measured_only(out: Outcome, t: Targets, mask: np.ndarray) -> tuple[Outcome, Targets]:
    """The requests of `mask` only (a warm-up excluded); costs are the cluster's, unchanged."""
    sub = Outcome(
        profile=out.profile[mask],
        ttft_s=out.ttft_s[mask],
        e2e_s=out.e2e_s[mask],
        tokens=out.tokens[mask],
        truncated=out.truncated[mask],
        reject_reason=[r for r, m in zip(out.reject_reason, mask, strict=True) if m],
        reject_status=None if out.reject_status is None else out.reject_status[mask],
        queued_s=None if out.queued_s is None else out.queued_s[mask],
        served_twice=out.served_twice,
        timeline=out.timeline,
        replica_cost=out.replica_cost,
        replica_hours=out.replica_hours,
        end_s=out.end_s,
    )
    fields = {k: getattr(t, k)[mask] for k in t.__dataclass_fields__}
    return sub, Targets(**fields)


def tpot_s(out: Outcome) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = np.maximum(out.tokens - 1, 1)
        return np.where(out.tokens > 1, (out.e2e_s - out.ttft_s) / steps, 0.0)


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"p50": None, "p95": None, "p99": None}
    p = np.percentile(v, [50, 95, 99])
    return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}


def _mean_ms(values: np.ndarray) -> float | None:
    v = values[np.isfinite(values)]
    return float(v.mean() * 1000) if len(v) else None


def prediction_error(t: Targets) -> dict[str, float]:
    """Median relative error of p50, the share of true lengths at or under p90, and the rank
    correlation (Spearman) of p50 with the true length (what ordering by it can use; NaN when
    either side is constant)."""
    from scipy.stats import spearmanr

    truth = np.maximum(t.output_tokens, 1)
    rel = np.abs(t.predicted_p50 - truth) / truth
    varied = len(truth) > 1 and np.ptp(truth) > 0 and np.ptp(t.predicted_p50) > 0
    rho = float(spearmanr(t.predicted_p50, truth).statistic) if varied else float("nan")
    return {
        "p50_median_relative_error": float(np.median(rel)),
        "p90_coverage": float(np.mean(truth <= t.predicted_p90)),
        "p50_spearman": rho,
    }


def judged_mask(out: Outcome) -> np.ndarray:
    """The requests the server's attainment judges (`attainment.judged`): served, or refused
    with a status and reason it counts (a refusal without a recorded status counts, as a
    miss)."""
    status = out.reject_status
    if status is None:
        return np.ones(len(out.profile), dtype=bool)
    return np.fromiter(
        (c == 0 or judged(int(c), r) for c, r in zip(status, out.reject_reason, strict=True)),
        dtype=bool,
        count=len(status),
    )


def _share(ok: np.ndarray, mask: np.ndarray) -> float | None:
    return float(ok[mask].mean()) if mask.any() else None


def summarize(
    out: Outcome, t: Targets, profile_names: list[str], tier_ranks: np.ndarray
) -> dict[str, Any]:
    n = len(out.profile)
    served = out.profile >= 0
    tp = tpot_s(out)
    ok = served & (out.ttft_s <= t.ttft_s) & (tp <= t.tpot_s) & (out.e2e_s <= t.e2e_s)
    quality = served & (tier_ranks[np.maximum(out.profile, 0)] >= t.need_rank)
    cost = float(out.replica_cost.sum())
    tokens = int(out.tokens[served].sum())
    counted = judged_mask(out)
    per_tenant = {}
    for name in sorted(set(t.tenants.tolist())):
        m = t.tenants == name
        per_tenant[name] = {
            "requests": int(m.sum()),
            "slo_attainment": _share(ok, m),
            "slo_attainment_judged": _share(ok, m & counted),
        }
    reasons = Counter(r for r in out.reject_reason if r is not None)
    expected = expected_quality(out, t, tier_ranks)
    for name, m in per_tenant.items():
        m.update(expected_quality(out, t, tier_ranks, t.tenants == name))
    return {
        "cost_usd": cost,
        "cost_per_million_output_tokens": cost / tokens * 1e6 if tokens else None,
        "slo_attainment": float(ok.mean()) if n else None,
        "slo_attainment_judged": _share(ok, counted),
        "slo_judged": int(counted.sum()),
        "slo_attainment_per_tenant": per_tenant,
        "quality": float(quality.mean()) if n else None,
        **expected,
        "requests": n,
        "served": int(served.sum()),
        "rejected": int(n - served.sum()),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "truncated": int(out.truncated.sum()),
        "output_tokens": tokens,
        "ttft_ms": {
            k: (v * 1000 if v is not None else None) for k, v in _pcts(out.ttft_s[served]).items()
        },
        "tpot_ms": {k: (v * 1000 if v is not None else None) for k, v in _pcts(tp[served]).items()},
        "e2e_ms": {
            k: (v * 1000 if v is not None else None) for k, v in _pcts(out.e2e_s[served]).items()
        },
        "e2e_mean_ms": _mean_ms(out.e2e_s[served]),
        "ttft_mean_ms": _mean_ms(out.ttft_s[served]),
        "replica_hours": {
            name: float(h)
            for name, h in zip(profile_names, out.replica_hours, strict=True)
            if h > 0
        },
        "served_by_profile": {
            name: int((out.profile == i).sum())
            for i, name in enumerate(profile_names)
            if (out.profile == i).any()
        },
        "served_twice": out.served_twice,
        "simulated_s": out.end_s,
    }


def expected_quality(
    out: Outcome, t: Targets, tier_ranks: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float | None]:
    """Mean P(the serving tier answers well) (refused: 0), always-strongest's, and the share."""
    known = ~np.isnan(t.success[:, 0])
    m = known if mask is None else known & mask
    if not m.any():
        return {"expected_quality": None, "expected_quality_strongest": None, "quality_share": None}
    rows = np.flatnonzero(m)
    served = out.profile[rows] >= 0
    got = np.where(served, t.success[rows, tier_ranks[np.maximum(out.profile[rows], 0)]], 0.0)
    best = t.success[rows, int(tier_ranks.max())]
    return {
        "expected_quality": float(got.mean()),
        "expected_quality_strongest": float(best.mean()),
        "quality_share": float(got.sum() / best.sum()) if best.sum() > 0 else None,
    }


def matched_latency(
    outcomes: Mapping[str, Outcome], penalty_s: float
) -> dict[str, dict[str, float | int | None]]:
    """Per policy, latency on the same requests for all (`outcomes` of one replay: the same
    requests in the same order): `served_by_all` (how many every policy served) with the mean
    e2e and TTFT over them (ms), and the mean e2e over ALL requests with each of its refusals
    counted at `penalty_s` (ms; `refusal_penalty_s` records it)."""
    if not outcomes:
        return {}
    sizes = {len(o.profile) for o in outcomes.values()}
    if len(sizes) != 1:
        raise ValueError(f"outcomes of different replays: {sorted(sizes)} requests")
    both = np.logical_and.reduce([o.profile >= 0 for o in outcomes.values()])
    out: dict[str, dict[str, float | int | None]] = {}
    for name, o in outcomes.items():
        served = o.profile >= 0
        charged = np.where(served, o.e2e_s, penalty_s)
        out[name] = {
            "served_by_all": int(both.sum()),
            "e2e_mean_matched_ms": _mean_ms(o.e2e_s[both]),
            "ttft_mean_matched_ms": _mean_ms(o.ttft_s[both]),
            "e2e_mean_refusal_penalty_ms": _mean_ms(charged),
            "refusal_penalty_s": penalty_s,
        }
    return out


def saving_at_quality(
    policies: dict[str, dict[str, Any]], of: str = "ours", within: float = 0.01
) -> tuple[str, float] | None:
    """(the cheapest baseline whose quality is at least `of`'s minus `within`, its cost over
    `of`'s); None when no baseline reaches that quality. Ours and the oracle are not baselines."""
    mine = policies.get(of)
    if not mine or not mine.get("cost_usd"):
        return None
    floor = (mine["quality"] or 0.0) - within
    peers = {
        k: v
        for k, v in policies.items()
        if k not in ("ours", "oracle") and (v["quality"] or 0.0) >= floor
    }
    if not peers:
        return None
    best = min(peers, key=lambda k: (peers[k]["cost_usd"], k))
    return best, peers[best]["cost_usd"] / mine["cost_usd"]
