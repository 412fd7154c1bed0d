"""Quality targets: which quality tiers answer this request well enough for its tenant (pure).

The predictor gives each tier of the quality scale a calibrated probability of answering the
request well (`TokenBudget.tier_success`). A tenant's policy may ask for
- `min_success` p: a tier qualifies when its expected success is >= p (per request);
- `share_of_strongest` s: per tenant, its expected quality over its traffic >= s x what
  always-strongest routing would give. A `QualityAccount` per tenant keeps the running sums of
  the served tier's and the strongest usable tier's expected success; their surplus over the
  target (`slack` = served - s x strongest, in expected successes) lets a request take a
  tier below s x its strongest as long as the surplus stays >= 0: a tier qualifies when its
  expected success is >= s x the strongest's - slack. The easy requests' surplus pays for
  hard ones served cheaper, so the target binds over the traffic, not on every request.
Both must hold. When no usable tier meets them, the strongest usable tiers qualify (a target
no profile can reach never refuses a request by itself; `decide` notes it). Without a
prediction of tier success, or without a target, every tier qualifies.

Which tier an upgrade goes to (`cheapest_upgrade`): when the cheapest tier does not qualify,
the request must buy quality. Of the tiers that keep the account at or above its target
(expected success >= s x the strongest's - the whole slack, and >= `min_success`), it takes
the one with the lowest expected cost per unit of expected success gained over the cheapest
tier, each tier at its cheapest usable profile's expected cost of the request (token prices,
`pricing`). The tiers at or above that one's success qualify, and `decide` ranks them as
any candidates, a closed pool at its opening price too (`pricing.opening_cost_usd`: the one
price model): while the chosen tier's pool is closed and an open stronger one serves, the
request counts as demand declined on the opening price (`signals/opening.py`), which
amortises that price until opening the pool pays. This is the first step
along the lower convex hull of (success, cost) from the cheapest tier, which is what the
cost-minimal mix meeting an average-quality target uses: an upgrade that gains more success
than the request needs banks the rest for later requests, so a tier twice the price for 1.2x
the gain is not worth it, and a tier a little dearer for twice the gain is. Invariant: the
chosen tier keeps the account's slack >= 0, so the tenant's target still holds over its
traffic (`QualityAccount`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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
    slack: float = 0.0,
) -> QualityVerdict:
    """Which of `tiers` (the usable profiles' tiers) meet the quality target; `slack`: the
    tenant's surplus over its share target (`QualityAccount.slack`; 0: held per request)."""
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
        # one request spends at most a part of the surplus (a debt is owed whole): a request
        # far below the share goes up while small shortfalls ride on the surplus
        spend = slack / SURPLUS_SPENT_PER_REQUEST if slack > 0 else slack
        need = max(need, share_of_strongest * p[top] - spend)
        banked = f" - {spend:.2f} of the banked {slack:.2f}" if slack else ""
        parts.append(f"{share_of_strongest:g}x {top}'s {p[top]:.2f}{banked}")
    ok = frozenset(t for t in usable if p[t] >= need - 1e-12)
    shown = ", ".join(f"{t} {p[t]:.2f}" for t in sorted(usable, key=TIER_RANK.__getitem__))
    if not ok:
        best = max(p.values())
        ok = frozenset(t for t in usable if p[t] == best)
        return QualityVerdict(
            ok, f"quality: no tier reaches {need:.2f} ({shown}); the strongest qualify"
        )
    return QualityVerdict(ok, f"quality: need {need:.2f} ({' and '.join(parts)}); {shown}")


def cheapest_upgrade(
    verdict: QualityVerdict,
    success: Mapping[str, float],
    price: Mapping[str, float],
    min_success: float | None,
    share_of_strongest: float | None,
    slack: float = 0.0,
) -> QualityVerdict | None:
    """Where an upgrade goes (see the module docstring): `verdict` is `qualifying_tiers`'
    (whether the request must go up: its cheapest tier is not in it), `success` and `price`
    per usable tier (price: the cheapest usable profile of that tier). None when there is
    nothing to choose: the cheapest tier qualifies, or no tier that keeps the account at its
    target gains over it (the caller keeps `verdict`)."""
    if share_of_strongest is None or not price or not success:
        return None  # a per-request target banks nothing: its cheapest qualifying tier is best
    base = min(price, key=lambda t: (price[t], -success[t]))
    if base in verdict.tiers:
        return None
    strongest = success[max(success, key=TIER_RANK.__getitem__)]
    floor = share_of_strongest * strongest - slack if share_of_strongest is not None else 0.0
    if min_success is not None:
        floor = max(floor, min_success)
    keep = [t for t in price if success[t] >= floor - 1e-12 and success[t] > success[base]]
    if not keep:
        return None

    def per_gain(t: str) -> tuple[float, float]:
        return (price[t] - price[base]) / (success[t] - success[base]), price[t]

    best = min(keep, key=per_gain)
    ok = frozenset(t for t in success if success[t] >= success[best] - 1e-12)
    rate = per_gain(best)[0]
    return QualityVerdict(
        ok,
        f"{verdict.note}; upgrade: {best}, ${rate:.3g} per unit of expected success gained "
        f"over {base}, the least of the tiers that keep the account on target (>= {floor:.2f})",
    )


# a request may spend at most 1/this of the tenant's surplus: the surplus then goes to the many
# requests a little below the share, and those far below it go up (nearer the offline optimum,
# which upgrades the largest shortfalls first: on a synthetic stream 4-15 % fewer upgrades than
# spending it all, overshooting the share by <= 0.001)
SURPLUS_SPENT_PER_REQUEST = 3.0

# the account forgets with a half-life of this many requests: the target holds over the whole
# traffic and, within a factor, over any recent stretch of it (a surplus banked on an easy
# morning does not pay for a hard afternoon)
ACCOUNT_HALF_LIFE_REQUESTS = 700


@dataclass(slots=True)
class QualityAccount:
    """One tenant's running expected quality, as the simulator measures it: over its requests,
    the sums of the served tier's predicted success (a refusal, or a routed request handed
    back unanswered, counts 0) and the strongest usable tier's. A surplus over the target fades
    (half-life `ACCOUNT_HALF_LIFE_REQUESTS`), a debt (a downgrade, a target no tier reached)
    is never forgotten. Accounts of separate processes add.

    What is short for want of capacity is charged to capacity, not to later requests' routing
    (`shed`: the success a routed request would have had when it was handed back; a refused
    one's share of its strongest): the routing book (`sums`, the slack) counts it as the
    router decided it, so an overload hand-back is never repaid by upgrades that send more
    work to the pool that shed it. With every routed request on a qualifying tier the routing
    slack stays >= 0 (the undecayed one >= the decayed one: each fading step removed a
    surplus), so the tenant's expected quality is >= s x always-strongest's less what
    capacity shed (`delivered` is that measured share)."""

    served: float = 0.0
    strongest: float = 0.0
    shed: float = 0.0
    decay: float = field(default=0.5 ** (1 / ACCOUNT_HALF_LIFE_REQUESTS))

    @property
    def sums(self) -> tuple[float, float]:
        """The routing book (served + shed, strongest): what `PlanState.quality` carries."""
        return self.served + self.shed, self.strongest

    @property
    def delivered(self) -> float | None:
        """Expected quality answered over always-strongest's (None: nothing recorded)."""
        return self.served / self.strongest if self.strongest > 0 else None

    def slack(self, share: float | None) -> float:
        """Expected successes banked above `share` x always-strongest in the routing book
        (0 without a share)."""
        return 0.0 if share is None else self.served + self.shed - share * self.strongest

    def record(
        self, served: float, strongest: float, share: float | None = None, shed: float = 0.0
    ) -> None:
        """Add one request; the sums fade first unless they hold a debt against `share` or
        the request was refused (`shed` > 0: the routing book moves by nothing)."""
        fade = self.decay if (share is None or self.slack(share) >= 0) and not shed else 1.0
        self.served = self.served * fade + served
        self.strongest = self.strongest * fade + strongest
        self.shed = self.shed * fade + shed

    def handed_back(self, served: float) -> None:
        """A recorded request that was not answered after all (the ingress queue handed it
        back): its success leaves `served` for `shed` (no fading step: it was counted)."""
        self.served -= served
        self.shed += served


def served_and_strongest(decision: object) -> tuple[float, float] | None:
    """(P(the served tier answers well), P(the strongest tier the request could use does)) of
    a `Decision` with a prediction: a refusal served nothing (0, as the simulator's measured
    quality counts it); None without a prediction or without a tier that passed the filters."""
    tier_success = getattr(decision, "tier_success", None)
    candidates = getattr(decision, "candidates", ())
    if not tier_success or not candidates:
        return None
    chosen = [c.tier for c in candidates if c.chosen]
    routed = bool(chosen) and getattr(decision, "profile", None) is not None
    usable = [c.tier for c in candidates if c.stage != "filter"] or chosen
    if not usable:
        return None
    top = max(usable, key=TIER_RANK.__getitem__)
    served = expected_success(chosen[0], tier_success) if routed else 0.0
    strongest = expected_success(top, tier_success)
    if not (math.isfinite(served) and math.isfinite(strongest)):
        return None
    return served, max(served, strongest)


class QualityAccounts:
    """Every tenant's `QualityAccount` in this process (the server's ingress, the simulator)."""

    def __init__(self) -> None:
        self._accounts: dict[str, QualityAccount] = {}

    def of(self, tenant: str) -> QualityAccount:
        """The tenant's account (a fresh one, unrecorded, when it has none)."""
        return self._accounts.get(tenant) or QualityAccount()

    def record(self, tenant: str, decision: object) -> float | None:
        """Count a decision: a routed one at its served tier, a refusal at 0 served with its
        target's share of the strongest tier charged to capacity (`QualityAccount`); one
        without prediction: nothing. Returns the success counted served (None: nothing)."""
        pair = served_and_strongest(decision)
        if pair is None:
            return None
        share = getattr(decision, "share_of_strongest", None)
        routed = getattr(decision, "profile", None) is not None
        shed = 0.0 if routed or share is None else share * pair[1]
        self._accounts.setdefault(tenant, QualityAccount()).record(*pair, share, shed)
        return pair[0]

    def handed_back(self, tenant: str, decision: object) -> None:
        """A routed `decision` the ingress queue handed back unanswered (`queue_timeout`,
        `queue_full`, its engine lost): what `record` counted served counts 0 answered,
        charged to capacity (`QualityAccount.handed_back`)."""
        pair = served_and_strongest(decision)
        if pair is not None and pair[0] > 0 and tenant in self._accounts:
            self._accounts[tenant].handed_back(pair[0])


__all__ = [
    "ACCOUNT_HALF_LIFE_REQUESTS",
    "QualityAccount",
    "QualityAccounts",
    "QualityVerdict",
    "cheapest_upgrade",
    "SURPLUS_SPENT_PER_REQUEST",
    "expected_success",
    "qualifying_tiers",
    "served_and_strongest",
]
