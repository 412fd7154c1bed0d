"""The output tokens the planner sizes each request's demand from (pure).

The predictor gives quantiles (p50, p90) of a skewed length; a sum of medians understates
the tokens a load will generate. `expected_output_tokens` reads a request as a lognormal
fitted to its p50 and p90 and takes the mean of that length cut at `max_tokens` (the engine
stops there): E[min(X, cap)] with ln X ~ N(ln p50, s), s = ln(p90 / p50) / z90. The policy
chooses (`autoscaling.demand_sizing`, `sized_tokens`): the median (default; attainment
pressure adds what it misses) or that mean (sized up front; over-sizes when the predictor is
unsure: its p90 is wide). The server's demand meter (`serving/request_run.py`,
`signals/refusals.py`) and the simulator (`simulate/policies.py`) both call `sized_tokens` /
`sized_of`; routing, pricing and the scheduler keep reading the quantiles.

Invariants: min(p50, cap) <= result <= cap; p50 == p90 gives min(p50, cap); the result
grows with p90 and with the cap; without a cap it is the lognormal's mean, never above p90
(the mean passes p90 only when p90 > 26.7 x p50, a tail no predictor here gives).
"""

from __future__ import annotations

import math
from typing import Literal

from orchestrator.routing.types import Estimate

Z90 = 1.2815515655446004  # standard normal quantile at 0.9


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def expected_output_tokens(p50: float, p90: float, cap: float | None = None) -> float:
    """Mean of a lognormal with median `p50` and 90th percentile `p90`, cut at `cap`."""
    p50 = max(float(p50), 0.0)
    p90 = max(float(p90), p50)
    top = math.inf if cap is None else max(float(cap), 0.0)
    if p50 <= 0.0 or p90 <= p50 or p50 >= top:
        return min(p50, top)
    mu = math.log(p50)
    s = math.log(p90 / p50) / Z90
    if cap is None:
        return min(math.exp(mu + s * s / 2.0), p90)
    b = (math.log(top) - mu) / s
    # E[X; X < top] + top * P(X >= top)
    below = math.exp(mu + s * s / 2.0) * _phi(b - s)
    return below + top * (1.0 - _phi(b))


DemandSizing = Literal["p50", "expected"]


def sized_tokens(sizing: DemandSizing, p50: float, p90: float, cap: float | None = None) -> float:
    """Output tokens the planner sizes one request's demand from (policy
    `autoscaling.demand_sizing`): "p50", the median cut at `cap`; "expected", the mean above."""
    if sizing == "p50":
        return float(p50 if cap is None else min(p50, cap))
    return expected_output_tokens(p50, p90, cap)


def sized_of(sizing: DemandSizing, estimate: Estimate) -> float:
    """`sized_tokens` of a priced candidate (its p50 is the estimate's median answer with the
    expected reasoning, already cut at its `max_tokens`)."""
    return float(estimate.output_tokens) if sizing == "p50" else expected_of(estimate)


def expected_of(estimate: Estimate) -> float:
    """Expected generated tokens of a priced candidate: its p50 and p90 (reasoning included)
    cut at the `max_tokens` it would be sent with."""
    return expected_output_tokens(
        estimate.output_tokens, estimate.output_tokens_p90, estimate.max_tokens
    )
