"""Demand forecast: Holt's linear method with a damped trend, on irregular time steps (pure).

Why this one (docs/controller.md has the longer version): it is two smoothing constants a
person can reason about (a level and a trend time constant, in seconds, so irregular ticks,
a restart gap or a simulator's virtual clock need no special case: alpha = 1 - exp(-dt/T));
the damped trend (Gardner & McKenzie 1985) extrapolates a ramp without running away when the
ramp ends, and is the strongest simple method in the forecasting competitions (M3/M4). A
Kalman local-linear-trend filter's steady state is the same recursion; its variance would only
duplicate the policy's `headroom`.

Recursion for a new value z after dt seconds (T_l, T_b the level/trend time constants):
pred = l + b dt; l' = pred + alpha (z - pred); b' = b + beta ((l' - l)/dt - b) (unbiased on a
ramp). Only the extrapolation is damped (tau = trend_damping_s): the forecast h seconds ahead
is l + b * tau * (1 - exp(-h/tau)), never below 0, so a trend is never carried further than
about tau seconds.
"""

from __future__ import annotations

import math

from orchestrator.planning.types import HoltState, PlannerKnobs


def _damped(slope: float, horizon_s: float, tau_s: float) -> float:
    return slope * tau_s * (1.0 - math.exp(-horizon_s / tau_s))


def holt_update(state: HoltState, value: float, now_s: float, knobs: PlannerKnobs) -> HoltState:
    """The filter after observing `value` at `now_s` (a repeated or older time is ignored)."""
    if state.t_s is None:
        return HoltState(level=value, slope=0.0, t_s=now_s)
    dt = now_s - state.t_s
    if dt <= 0:
        return state
    alpha = 1.0 - math.exp(-dt / knobs.level_time_s)
    beta = 1.0 - math.exp(-dt / knobs.trend_time_s)
    pred = state.level + state.slope * dt
    level = pred + alpha * (value - pred)
    slope = state.slope + beta * ((level - state.level) / dt - state.slope)
    return HoltState(level=level, slope=slope, t_s=now_s)


def holt_forecast(state: HoltState, horizon_s: float, knobs: PlannerKnobs) -> float:
    """Expected value `horizon_s` after the last update (>= 0)."""
    return max(0.0, state.level + _damped(state.slope, horizon_s, knobs.trend_damping_s))


def planning_demand(state: HoltState, horizon_s: float, knobs: PlannerKnobs) -> float:
    """The load to provision for: the larger of now and one start-up ahead. Capacity added now
    serves at `now + start-up`, while capacity removed now is gone at once, so a falling
    forecast never removes what the current level still needs."""
    return max(max(0.0, state.level), holt_forecast(state, horizon_s, knobs))
