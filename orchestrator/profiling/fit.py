"""Sweep results -> the catalog's `performance:` figures (pure arithmetic, no engine).

The figures are fitted to the same load model the router prices with (routing/estimate.py):
aggregate decode speed rises linearly from the single-stream speed at one request to
`output_tokens_per_s` at `max_concurrency` (C) requests and stays flat beyond; TTFT is
`ttft_ms_base` + prompt tokens / `prefill_tokens_per_s`.
- single stream = 1 / TPOT of a request alone (speculative decoding included, as served);
- C = the measured batch size whose piecewise-linear curve has the least squared relative error
  against the measured aggregate speeds (batch / TPOT at each batch size);
- output_tokens_per_s = the measured aggregate speed at C;
- prefill speed and base = least-squares line through (prompt tokens, TTFT) of lone requests;
- cached-prefix cost = (TTFT with a warm prefix - base - suffix / speed) / (prefix / speed):
  the share of a prompt token's prefill a prefix-cache hit still costs (0 = free).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchestrator.catalog.schema import Performance
from orchestrator.profiling.sweep import StepResult


class FitError(ValueError):
    """The sweep lacks what a figure needs (e.g. no decode step finished)."""


@dataclass(frozen=True, slots=True)
class FitReport:
    performance: Performance
    decode_curve: dict[int, float]  # batch -> aggregate decode tokens/s (measured)
    tpot_ms: dict[int, float]  # batch -> median per-stream TPOT (measured)
    prefill_points: list[tuple[int, float]]  # (prompt tokens, TTFT ms) of lone requests
    prefill_r2: float
    cached_prefix_cost: float | None  # share of prefill a cached token still costs
    cached_tokens_seen: int  # prompt tokens the engine reported as prefix-cache hits
    notes: list[str] = field(default_factory=list)


def _median(values: Iterable[float]) -> float:
    vals = list(values)
    if not vals:
        raise FitError("no values")
    return statistics.median(vals)


def decode_curve(results: Sequence[StepResult]) -> tuple[dict[int, float], dict[int, float]]:
    """batch -> aggregate decode tokens/s, batch -> median TPOT ms, from decode steps."""
    tpot: dict[int, float] = {}
    for r in results:
        if r.step.kind != "decode":
            continue
        vals = [t.tpot_s for t in r.requests if t.tpot_s is not None and t.tpot_s > 0]
        if vals:
            tpot[r.step.batch] = _median(vals)
    if 1 not in tpot:
        raise FitError("the sweep has no finished decode step at batch size 1")
    curve = {b: b / s for b, s in sorted(tpot.items())}
    return curve, {b: 1000.0 * s for b, s in sorted(tpot.items())}


def _model(single: float, cap: int, at_cap: float, n: int) -> float:
    if cap <= 1:
        return single if n <= 1 else at_cap
    if n >= cap:
        return at_cap
    return single + (at_cap - single) * (n - 1) / (cap - 1)


def choose_concurrency(curve: dict[int, float]) -> int:
    """The batch size whose piecewise-linear load curve best fits the measured one."""
    single = curve[min(curve)]
    best, best_err = min(curve), float("inf")
    for cap, at_cap in curve.items():
        err = sum(((_model(single, cap, at_cap, n) - v) / v) ** 2 for n, v in curve.items())
        if err < best_err - 1e-12:
            best, best_err = cap, err
    return best


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares y = a + b x; returns (a, b, r^2)."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        raise FitError("need TTFT at two prompt lengths at least")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - a - b * x) ** 2 for x, y in points)
    return a, b, (1.0 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def fit_performance(results: Sequence[StepResult]) -> FitReport:
    curve, tpot_ms = decode_curve(results)
    notes: list[str] = []
    cap = choose_concurrency(curve)
    single = curve[1]
    points = [
        (t.prompt_tokens, 1000.0 * t.first_token_s)
        for r in results
        if r.step.kind == "prefill"
        for t in r.requests
    ]
    base_ms, ms_per_token, r2 = fit_line(points)
    if ms_per_token <= 0:
        longest = max(points)
        ms_per_token = longest[1] / longest[0]
        base_ms = 0.0
        notes.append("TTFT did not grow with prompt length; prefill speed = longest prompt / TTFT")
    if base_ms < 0:
        notes.append(f"TTFT intercept {base_ms:.1f} ms < 0 clipped to 0")
        base_ms = 0.0
    prefill_rate = 1000.0 / ms_per_token
    cached_cost, cached_seen = None, 0
    prefix = [(r.step, t) for r in results if r.step.kind == "prefix" for t in r.requests]
    if prefix:
        cached_seen = sum(t.cached_tokens for _, t in prefix)
        ttft = _median(1000.0 * t.first_token_s for _, t in prefix)
        step = prefix[0][0]
        shared = step.prompt_tokens - step.suffix_tokens
        full = shared * ms_per_token
        cached_cost = min(
            1.0, max(0.0, (ttft - base_ms - step.suffix_tokens * ms_per_token) / full)
        )
        if cached_seen == 0:
            notes.append("the engine reported no prefix-cache hits (prefix caching off?)")
    performance = Performance(
        output_tokens_per_s=round(curve[cap], 1),
        single_stream_tokens_per_s=round(single, 1),
        prefill_tokens_per_s=round(prefill_rate, 0),
        max_concurrency=cap,
        ttft_ms_base=round(base_ms, 1),
    )
    return FitReport(
        performance=performance,
        decode_curve=curve,
        tpot_ms=tpot_ms,
        prefill_points=points,
        prefill_r2=r2,
        cached_prefix_cost=cached_cost,
        cached_tokens_seen=cached_seen,
        notes=notes,
    )
