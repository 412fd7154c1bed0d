"""Where one policy's cost differs from another's, term by term (pure).

From two runs' per-profile replica-hours and requests served, and the profiles' hourly
prices, the difference `cost(ours) - cost(base)` splits exactly into:

- `idle_minimum`: replica-hours of profiles ours served nothing on, up to the policy's
  always-on minimum (a warm replica no request used);
- `unused_start`: the rest of the replica-hours of profiles ours served nothing on (replicas
  started warm or for a request that went elsewhere, held until the scale-down delay);
- `other_profiles`: profiles ours served requests on and the base did not use (the router's
  choices beyond the base's: a pricier or a cold profile for some requests);
- `shared_pools`: the difference on profiles both used (autoscaling against the base's
  sizing: positive = ours ran more replica-hours there);
- `base_only`: minus the cost of profiles only the base used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TERMS = ("idle_minimum", "unused_start", "other_profiles", "shared_pools", "base_only")


@dataclass(frozen=True)
class RunUse:
    """One run's use of the profiles: replica-hours and requests served per profile."""

    replica_hours: Mapping[str, float]
    served: Mapping[str, int]

    @classmethod
    def of(cls, metrics: Mapping) -> RunUse:
        """From a policy's `summarize` metrics (or its `--json` entry)."""
        return cls(dict(metrics["replica_hours"]), dict(metrics["served_by_profile"]))


def cost_terms(
    ours: RunUse,
    base: RunUse,
    price_per_hour: Mapping[str, float],
    min_replicas: Mapping[str, int],
    hours: float,
) -> dict[str, dict[str, float]]:
    """{term: {profile: USD}} with every term of `TERMS` present; the USD figures sum to
    cost(ours) - cost(base). `hours` is the billed span (for the always-on minimum)."""
    out: dict[str, dict[str, float]] = {t: {} for t in TERMS}
    for name, price in price_per_hour.items():
        mine = ours.replica_hours.get(name, 0.0) * price
        theirs = base.replica_hours.get(name, 0.0) * price
        used = ours.served.get(name, 0) > 0
        if mine <= 0 and theirs <= 0:
            continue
        if not used and mine > 0:
            idle = min(mine, min_replicas.get(name, 0) * hours * price)
            if idle > 0:
                out["idle_minimum"][name] = idle
            if mine - idle > 0:
                out["unused_start"][name] = mine - idle
        if used and theirs <= 0:
            out["other_profiles"][name] = mine
        elif used:
            out["shared_pools"][name] = mine - theirs
        if theirs > 0 and not used:
            out["base_only"][name] = -theirs
    return out


def term_totals(terms: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """USD per term (summed over profiles)."""
    return {t: sum(terms.get(t, {}).values()) for t in TERMS}
