"""Per-profile calibration learned online from served traffic. Pure maths, no I/O.

Each profile's model answers at its own length. On top of the profile-free model's
log-quantiles the predictor adds, per profile:
- `log_offset`: a shrunken, exponentially-forgetting mean of log1p(actual) - base_log_p50
  (a verbose model gets a positive offset). Prior: the artifact's offset for the same model
  family when one was in the training data, else 0, worth `prior_weight` observations.
- `p90_shift`: adaptive conformal inference (Gibbs & Candes, 2021): after each request the
  shift grows by eta*0.9 on a miss (actual > p90) and shrinks by eta*0.1 on a hit, so the
  long-run miss rate tends to 10% whatever the profile's spread. The step starts larger
  (`p90_eta_start / sqrt(1 + observations)`, floored at `p90_eta`) so a new workload's
  coverage settles within its first hundred requests.
- `reasoning_log_ratio`: the same forgetting mean for log(thinking tokens / visible p50),
  updated only when a request actually produced thinking tokens.

An answer cut at its cap (`max_tokens` or the context room, `was_cut`) is censored: its true
length is only known to be at least what it produced. It teaches the offset only when it
already exceeds the predicted p50 (a lower bound that moves the offset the right way), the p90
shift only when it already exceeds the predicted p90 (a certain miss), and never the thinking
ratio. Learning a cut length as a full one would pull a profile whose clients ask for short
caps towards short predictions for every request.

After a batch of labelled requests (`predictor learn`, the replay after a refit)
`recalibrate_p90` sets the p90 shift by split conformal prediction on those requests: the
adaptive steps above need hundreds of requests to settle, a batch already holds the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class CalibrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_weight: float = Field(20.0, ge=0, description="pseudo-observations behind the prior")
    memory: float = Field(2000.0, gt=1, description="effective window of the forgetting mean")
    p90_eta: float = Field(0.05, gt=0, description="ACI step size in log-token units")
    p90_eta_start: float = Field(
        0.3, ge=0, description="first ACI step; decays as 1/sqrt(1 + observations) to p90_eta"
    )
    max_abs_shift: float = Field(3.0, gt=0)


class ProfileCalibration(BaseModel):
    """One profile's learned correction. Invariant: weights >= 0, |shifts| <= max_abs_shift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_offset: float = 0.0
    residual_sum: float = 0.0  # forgetting sum of log residuals
    weight: float = Field(0.0, ge=0)  # forgetting count behind residual_sum
    p90_shift: float = 0.0
    prior_reasoning_log_ratio: float = math.log(2.0)
    reasoning_sum: float = 0.0
    reasoning_weight: float = Field(0.0, ge=0)
    observations: int = Field(0, ge=0)

    def log_offset(self, config: CalibrationConfig) -> float:
        """Posterior mean of the profile's log length factor."""
        n0 = config.prior_weight
        return (
            (n0 * self.prior_offset + self.residual_sum) / (n0 + self.weight)
            if (n0 + self.weight) > 0
            else 0.0
        )

    def reasoning_log_ratio(self, config: CalibrationConfig) -> float:
        n0 = config.prior_weight
        total = n0 + self.reasoning_weight
        if total <= 0:
            return self.prior_reasoning_log_ratio
        return (n0 * self.prior_reasoning_log_ratio + self.reasoning_sum) / total


def was_cut(tokens_per_choice: int, cap: int | None) -> bool:
    """Whether an answer stopped at its cap (per choice) rather than ending by itself: it
    reached the cap. An answer that ends on its own exactly at the cap counts as cut too (its
    length is then still a correct lower bound)."""
    return cap is not None and tokens_per_choice >= cap


def observe(
    cal: ProfileCalibration,
    base_log_p50: float,
    base_log_p90: float,
    output_tokens: int,
    reasoning_tokens: int,
    config: CalibrationConfig,
    cut: bool = False,
) -> ProfileCalibration:
    """The calibration after one finished request (pure). Negative counts are clamped to 0.
    `cut`: the answer stopped at its cap, so `output_tokens` is a lower bound (module doc);
    a cut answer below the predicted p50 leaves the calibration unchanged."""
    actual = math.log1p(max(0, int(output_tokens)))
    keep = 1.0 - 1.0 / config.memory
    offset = cal.log_offset(config)
    if cut and actual <= base_log_p50 + offset:
        return cal
    predicted_p90 = base_log_p90 + offset + cal.p90_shift
    miss = 1.0 if actual > predicted_p90 else 0.0
    shift = cal.p90_shift
    if miss or not cut:  # a cut answer below p90 says nothing about coverage
        eta = max(config.p90_eta, config.p90_eta_start / math.sqrt(1.0 + cal.observations))
        shift = cal.p90_shift + eta * (miss - 0.1)
        shift = max(-config.max_abs_shift, min(config.max_abs_shift, shift))
    update: dict[str, float | int] = {
        "residual_sum": keep * cal.residual_sum + (actual - base_log_p50),
        "weight": keep * cal.weight + 1.0,
        "p90_shift": shift,
        "observations": cal.observations + 1,
    }
    if reasoning_tokens and reasoning_tokens > 0 and not cut:
        visible = base_log_p50 + offset
        update["reasoning_sum"] = keep * cal.reasoning_sum + (
            math.log1p(reasoning_tokens) - visible
        )
        update["reasoning_weight"] = keep * cal.reasoning_weight + 1.0
    return cal.model_copy(update=update)


MIN_CONFORMAL_LINES = 20  # fewer labelled lines: keep the adaptive shift


def conformal_quantile(residuals: Sequence[float], level: float = 0.9) -> float:
    """Split-conformal quantile: the ceil((n + 1) * level)-th smallest residual (the largest
    when that rank exceeds n), so a new exchangeable residual is at or below it with
    probability >= level."""
    ordered = sorted(residuals)
    if not ordered:
        raise ValueError("no residuals")
    rank = math.ceil((len(ordered) + 1) * level)
    return ordered[min(rank, len(ordered)) - 1]


def recalibrate_p90(
    cal: ProfileCalibration,
    base_log_p90: Sequence[float],
    output_tokens: Sequence[int],
    config: CalibrationConfig,
    level: float = 0.9,
) -> ProfileCalibration:
    """The calibration with its p90 shift set so that `level` of these labelled requests
    fall at or below base p90 + offset + shift (pure). Fewer than MIN_CONFORMAL_LINES
    requests leave it unchanged."""
    if len(base_log_p90) != len(output_tokens):
        raise ValueError("base_log_p90 and output_tokens differ in length")
    if len(output_tokens) < MIN_CONFORMAL_LINES:
        return cal
    offset = cal.log_offset(config)
    residuals = [
        math.log1p(max(0, int(a))) - b - offset
        for b, a in zip(base_log_p90, output_tokens, strict=True)
    ]
    shift = conformal_quantile(residuals, level)
    shift = max(-config.max_abs_shift, min(config.max_abs_shift, shift))
    return cal.model_copy(update={"p90_shift": shift})
