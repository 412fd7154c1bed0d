"""Quality targets: which quality tiers answer this request well enough for its tenant (pure).

The predictor gives each tier of the quality scale a calibrated probability of answering the
request well (`TokenBudget.tier_success`). A tenant's policy may ask for
- `min_success` p: a tier qualifies when its expected success is >= p (per request);
- `share_of_strongest` s: a tier qualifies when its expected success is >= s x that of the
  strongest tier the request may use. Held on every request, the tenant's expected quality over
  its traffic is >= s x what always-strongest routing would give (the per-tenant target).
Both must hold. When no usable tier meets them, the strongest usable tiers qualify (a target
no profile can reach never refuses a request by itself; `decide` notes it). Without a
prediction of tier success, or without a target, every tier qualifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.concepts import TIER_RANK


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    """The tiers that meet the target, and a one-line explanation for the decision steps."""

    tiers: frozenset[str]
    note: str = ""


def expected_success(tier: str, tier_success: Mapping[str, float]) -> float:
    """The tier's probability of answering well (a tier missing from the map: the nearest
    weaker tier's, else the weakest known)."""
    if tier in tier_success:
        return tier_success[tier]
    known = sorted(tier_success, key=TIER_RANK.__getitem__)
    below = [t for t in known if TIER_RANK[t] <= TIER_RANK[tier]]
    return tier_success[below[-1] if below else known[0]]


def qualifying_tiers(
    tiers: Iterable[str],
    tier_success: Mapping[str, float] | None,
    min_success: float | None,
    share_of_strongest: float | None,
) -> QualityVerdict:
    """Which of `tiers` (the usable profiles' tiers) meet the quality target."""
    usable = frozenset(tiers)
    if not usable or not tier_success or (min_success is None and share_of_strongest is None):
        return QualityVerdict(usable)
    p = {t: expected_success(t, tier_success) for t in usable}
    top = max(usable, key=TIER_RANK.__getitem__)
    need = 0.0
    parts = []
    if min_success is not None:
        need = min_success
        parts.append(f"P>={min_success:g}")
    if share_of_strongest is not None:
        need = max(need, share_of_strongest * p[top])
        parts.append(f"{share_of_strongest:g}x {top}'s {p[top]:.2f}")
    ok = frozenset(t for t in usable if p[t] >= need - 1e-12)
    shown = ", ".join(f"{t} {p[t]:.2f}" for t in sorted(usable, key=TIER_RANK.__getitem__))
    if not ok:
        best = max(p.values())
        ok = frozenset(t for t in usable if p[t] == best)
        return QualityVerdict(
            ok, f"quality: no tier reaches {need:.2f} ({shown}); the strongest qualify"
        )
    return QualityVerdict(ok, f"quality: need {need:.2f} ({' and '.join(parts)}); {shown}")


__all__ = ["QualityVerdict", "expected_success", "qualifying_tiers"]
