"""Latency a profile can deliver, from its catalog performance figures (pure).

Two points bracket what a replica does:
- idle: one request alone decodes at `single_stream_tokens_per_s`;
- loaded: `max_concurrency` requests share `output_tokens_per_s`.
TTFT = ttft_ms_base + input_tokens / prefill_tokens_per_s in both (queueing is the router's
business). A latency SLO that even the idle figures miss can never be met.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.catalog.schema import Profile
from orchestrator.policy.schema import LatencySLO


@dataclass(frozen=True)
class LatencyEstimate:
    ttft_ms: float
    tpot_ms: float
    e2e_ms: float

    def misses(self, slo: LatencySLO) -> list[str]:
        """Names of the SLO fields this estimate breaks (empty = meets the SLO)."""
        out = []
        if slo.ttft_p95_ms is not None and self.ttft_ms > slo.ttft_p95_ms:
            out.append("ttft_p95_ms")
        if slo.tpot_p95_ms is not None and self.tpot_ms > slo.tpot_p95_ms:
            out.append("tpot_p95_ms")
        if slo.e2e_p95_ms is not None and self.e2e_ms > slo.e2e_p95_ms:
            out.append("e2e_p95_ms")
        return out

    def value(self, slo_field: str) -> float:
        return {
            "ttft_p95_ms": self.ttft_ms,
            "tpot_p95_ms": self.tpot_ms,
            "e2e_p95_ms": self.e2e_ms,
        }[slo_field]


def estimate_latency(
    profile: Profile, input_tokens: int, output_tokens: int, *, loaded: bool = False
) -> LatencyEstimate:
    """Latency of one request of the given size on an idle (default) or fully loaded replica."""
    perf = profile.performance
    ttft = perf.ttft_ms_base + 1000.0 * input_tokens / perf.prefill_tokens_per_s
    speed = perf.single_stream_tokens_per_s
    if loaded:
        speed = min(speed, perf.output_tokens_per_s / perf.max_concurrency)
    tpot = 1000.0 / speed
    e2e = ttft + tpot * max(output_tokens - 1, 0)
    return LatencyEstimate(ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e)
