"""How far the replica model is off per profile: an EMA of observed / modelled latency.

One `ScaleEma` per latency (TTFT, TPOT). Each settled request adds its ratio, clipped to
`bounds`, with weight `weight`; a ratio older than `max_age_s` is forgotten (the model alone
again). Invariant: what `fresh` returns is a ratio for the same requests at the load they met,
never an absolute latency, so a figure seen under a past (heavier) load cannot act as a floor
on today's lighter one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


class LatencyScales:
    """A profile's TTFT and TPOT scales, fed by settled requests (an on-settle hook)."""

    def __init__(self, ttft: ScaleEma | None = None, tpot: ScaleEma | None = None) -> None:
        self.ttft = ttft or ScaleEma()
        self.tpot = tpot or ScaleEma()

    def fresh(self, profile: str, now: float) -> dict[str, float | None]:
        """`{"ttft": .., "tpot": ..}`: the live scales (None when none is fresh, i.e. the
        replica model alone prices the profile)."""
        return {"ttft": self.ttft.fresh(profile, now), "tpot": self.tpot.fresh(profile, now)}

    def modelled(
        self, profile: str, estimate: Any, now: float
    ) -> tuple[float | None, float | None]:
        """The replica model's (TTFT, TPOT) in ms for a decision's `estimate`, without the
        profile's current scales: what the request's observed latencies are compared with."""
        if estimate is None:
            return None, None
        ttft = self.ttft.unscaled(profile, estimate.ttft_ms, now)
        tpot = self.tpot.unscaled(profile, estimate.tpot_ms, now)
        return (ttft if ttft > 0 else None), (tpot if tpot > 0 else None)

    def observe(
        self,
        profile: str,
        observed_s: tuple[float | None, float | None],
        modelled_ms: tuple[float | None, float | None],
        now: float,
    ) -> None:
        """A settled request's (TTFT, TPOT) in seconds against the model's figures in ms."""
        for scale, seen, model in zip((self.ttft, self.tpot), observed_s, modelled_ms, strict=True):
            if seen is not None and model is not None:
                scale.observe(profile, seen * 1000.0, model, now)


__all__ = ["LatencyScales", "ScaleEma"]
