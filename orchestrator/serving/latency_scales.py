"""How far the replica model is off per profile: an EMA of observed / modelled latency.

One `ScaleEma` per latency (TTFT, TPOT). Each settled request adds its ratio, clipped to
`bounds`, with weight `weight`; a ratio older than `max_age_s` is forgotten (the model alone
again). Invariant: what `fresh` returns is a ratio for the same requests at the load they met,
never an absolute latency, so a figure seen under a past (heavier) load cannot act as a floor
on today's lighter one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ScaleEma:
    """Per-profile (EMA of observed / modelled, monotonic time of its last update)."""

    weight: float = 0.2  # EMA weight of a new request's ratio
    max_age_s: float = 60.0  # an older ratio is forgotten
    bounds: tuple[float, float] = (0.2, 20.0)  # one request's ratio is clipped to these
    by_profile: dict[str, tuple[float, float]] = field(default_factory=dict)

    def fresh(self, profile: str, now: float) -> float | None:
        """The profile's ratio, or None when never observed or older than `max_age_s`."""
        found = self.by_profile.get(profile)
        if found is None or now - found[1] > self.max_age_s:
            return None
        return found[0]

    def observe(self, profile: str, observed_ms: float, modelled_ms: float, now: float) -> None:
        """One request's observed latency against the model's figure for it (both > 0)."""
        if observed_ms < 0 or modelled_ms <= 0:
            return
        low, high = self.bounds
        ratio = min(high, max(low, observed_ms / modelled_ms))
        prev = self.fresh(profile, now)
        ema = ratio if prev is None else prev + self.weight * (ratio - prev)
        self.by_profile[profile] = (ema, now)

    def unscaled(self, profile: str, scaled_ms: float, now: float) -> float:
        """A figure the model produced with the profile's current ratio, without it."""
        return scaled_ms / (self.fresh(profile, now) or 1.0)

    def clear(self) -> None:
        self.by_profile.clear()


__all__ = ["ScaleEma"]
