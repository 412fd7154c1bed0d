"""A demand level learned online: generated tokens against sized tokens, per profile (pure).

The planner sizes each request's output from its prediction (`planning/expected.py`: the
median or the lognormal mean, cut at the request's cap). Neither is exact: answers' mean is
above their median, and a lognormal through an unsure p50 and p90 over-sizes. `DemandLevel`
keeps, per profile, the ratio of the tokens recently settled requests generated to the tokens
they were sized at, and the planner's output demand is multiplied by it (`scale`, `factor`):
the server's demand meter (`signals/meters.DemandMeter.export`, fed at settlement by
`serving/request_run.py`) and the simulator's controller (`simulate/controllers.py`, fed at
each simulated finish) both call this class, with the policy's `autoscaling.demand_level`.

The level is a ratio of sums (the planner adds tokens, so a long answer weighs as much as the
tokens it took), each sum an exponentially weighted moving sum over the profile's settled
requests with weight 1 - 1 / `window`. A young level is shrunk toward 1 by its evidence (n
settled requests weigh n / (n + `PRIOR_SETTLED`); the shrinkage fades as n grows, whatever the
window) and the result is clamped to [1 / `max_factor`, `max_factor`].

Which settlements are exact: the unit is generated tokens, and the sizing is already cut at
the cap the request was sent with, so an answer cut at its cap (`calibration.was_cut`) is the
exact count of what the engine generated for a request sized for at most that cap: learned as
is (unlike the length model's calibration, for which a cut answer is only a lower bound of
the length). A request stopped early for any other reason (the client went away, the engine
failed: `ended=False`) generated at least what it did: a lower bound, which may raise the
level and never lowers it (it is taken only when it raises the factor, as calibration keeps a
cut answer only above its p50).

Invariants: `factor` is 1 with no settled request, or when the policy turns the level off;
always within [1 / max_factor, max_factor]; a lower-bound sample never lowers it; a sample
with no sized tokens is ignored; the state does not depend on the policy's bounds or on/off
(a hot reload that changes them acts on the next read, and the window on the next sample).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.policy.schema_cluster import DemandLevelSpec

PRIOR_SETTLED = 10.0  # pseudo-requests at level 1: a young level is believed by its evidence


@dataclass(frozen=True, slots=True)
class LevelSums:
    """Exponentially weighted sums over one profile's settled requests, and their count."""

    generated: float = 0.0
    sized: float = 0.0
    settled: int = 0

    def add(self, sized: float, generated: float, window: int) -> LevelSums:
        keep = 1.0 - 1.0 / window
        return LevelSums(keep * self.generated + generated, keep * self.sized + sized,
                         self.settled + 1)  # fmt: skip

    def factor(self, max_factor: float) -> float:
        """The ratio of the sums, shrunk toward 1 by the evidence and clamped."""
        if self.sized <= 0.0:
            return 1.0
        raw = self.generated / self.sized
        trust = self.settled / (self.settled + PRIOR_SETTLED)
        return min(max(1.0 + trust * (raw - 1.0), 1.0 / max_factor), max_factor)


class DemandLevel:
    """Per profile: generated / sized tokens of recently settled requests (module doc)."""

    def __init__(self) -> None:
        self._sums: dict[str, LevelSums] = {}

    def observe(
        self,
        profile: str,
        sized: float,
        generated: float,
        spec: DemandLevelSpec,
        *,
        ended: bool = True,
    ) -> None:
        """One settled request: sized at `sized` output tokens (before this level), it
        generated `generated`. `ended`: it ran to its end or its cap (exact); False: it was
        stopped early (client gone, engine failure), so `generated` is a lower bound."""
        if not sized > 0.0:
            return
        old = self._sums.get(profile, LevelSums())
        new = old.add(float(sized), max(float(generated), 0.0), spec.window)
        if not ended and new.factor(spec.max_factor) < old.factor(spec.max_factor):
            return
        self._sums[profile] = new

    def factor(self, profile: str, spec: DemandLevelSpec) -> float:
        """What the planner multiplies `profile`'s sized output demand by (1 when off)."""
        if not spec.enabled:
            return 1.0
        return self._sums.get(profile, LevelSums()).factor(spec.max_factor)

    def scale(self, profile: str, tokens: float, spec: DemandLevelSpec) -> float:
        """`tokens` sized output tokens (or a rate of them) of `profile`, at its level."""
        return tokens * self.factor(profile, spec)

    def levels(self, spec: DemandLevelSpec) -> dict[str, float]:
        """Every profile's factor (for status and reports)."""
        return {name: self.factor(name, spec) for name in sorted(self._sums)}
