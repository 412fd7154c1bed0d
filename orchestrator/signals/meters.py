"""Windowed rates and percentiles for the controller's observations (pure; time is passed in).

`DemandMeter` (ingress): requests admitted per profile with their prompt tokens and expected
output tokens, and requests refused for capacity per profile they were meant for
(`signals/refusals.py`; a shed request may be split over profiles by weight), their output
tokens exported at each profile's learned level (`planning/level.py`, fed at settlement by
`serving/request_run.py`; the policy's `autoscaling.demand_level`); `LatencyMeter`
(profile replica): TTFT and TPOT of recent streams. Both export a flat `{name: number}` dict,
the only shape Serve accepts from `record_autoscaling_stats`.
Invariant: samples older than the window are dropped on every read and write.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.attainment import within_targets
from orchestrator.planning.level import DemandLevel
from orchestrator.policy.model import Policy
from orchestrator.policy.schema_cluster import DemandLevelSpec

DEMAND_PREFIX = "demand"


def demand_key(profile: str, what: str) -> str:
    """Metric name of one demand figure of a profile: 'rps', 'in_tps', 'out_tps', 'usd_h',
    the same three rates of requests refused for capacity, 'refused_rps' etc., and the
    requests judged against their targets in the window, 'slo_judged' / 'slo_within'."""
    return f"{DEMAND_PREFIX}:{profile}:{what}"


def parse_demand_key(key: str) -> tuple[str, str] | None:
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != DEMAND_PREFIX:
        return None
    return parts[1], parts[2]


@dataclass
class DemandMeter:
    window_s: float = 30.0
    _events: dict[str, deque[tuple[float, float, float]]] = field(default_factory=dict)
    _spend: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    _refused: dict[str, deque[tuple[float, float, float, float]]] = field(default_factory=dict)
    _judged: dict[str, deque[tuple[float, bool]]] = field(default_factory=dict)
    level: DemandLevel = field(default_factory=DemandLevel)  # generated / sized, per profile
    # the policy in force, whose `autoscaling.demand_level` each export reads (hot-reloaded;
    # None: that block's defaults)
    policy: Callable[[], Policy] | None = None

    def judge(
        self,
        profile: str,
        observed_s: tuple[float | None, float | None],
        targets_ms: tuple[float | None, float | None],
        now: float,
    ) -> None:
        """A settled request's (TTFT, TPOT) in seconds against its tenant's targets in ms;
        not judged when its TTFT was not timed (not streamed) or it has no target."""
        if observed_s[0] is None or all(t is None for t in targets_ms):
            return
        seen = [None if s is None else 1000.0 * s for s in observed_s]
        self.judged(profile, within_targets(zip(seen, targets_ms, strict=True)), now)

    def judged(self, profile: str, within: bool, now: float) -> None:
        """A settled request served on `profile`, judged against its own tenant's TTFT and
        TPOT targets (the planner reads the share within them: p95 targets are shares)."""
        q = self._judged.setdefault(profile, deque())
        q.append((now, within))
        while q and q[0][0] < now - self.window_s:
            q.popleft()

    def spent(self, profile: str, usd: float, now: float) -> None:
        """A settled request's cost (what the ledger recorded)."""
        q = self._spend.setdefault(profile, deque())
        q.append((now, usd))
        while q and q[0][0] < now - self.window_s:
            q.popleft()

    def add(self, profile: str, prompt_tokens: float, output_tokens: float, now: float) -> None:
        q = self._events.setdefault(profile, deque())
        q.append((now, float(prompt_tokens), float(output_tokens)))
        self._trim(q, now)

    def refused(
        self,
        profile: str,
        prompt_tokens: float,
        output_tokens: float,
        now: float,
        weight: float = 1.0,
    ) -> None:
        """A request refused for capacity that `profile` would have served (`weight` of it)."""
        q = self._refused.setdefault(profile, deque())
        q.append((now, weight, weight * prompt_tokens, weight * output_tokens))
        self._trim(q, now)

    def refused_rates(self, now: float) -> dict[str, tuple[float, float, float]]:
        """Per profile: refused (requests/s, prompt tokens/s, expected output tokens/s)."""
        out = {}
        for profile, q in self._refused.items():
            self._trim(q, now)
            w = self.window_s
            out[profile] = (
                sum(e[1] for e in q) / w,
                sum(e[2] for e in q) / w,
                sum(e[3] for e in q) / w,
            )
        return out

    def _trim(self, q: deque, now: float) -> None:
        while q and q[0][0] < now - self.window_s:
            q.popleft()

    def rates(self, now: float) -> dict[str, tuple[float, float, float]]:
        """Per profile: (requests/s, prompt tokens/s, expected output tokens/s)."""
        out = {}
        for profile, q in self._events.items():
            self._trim(q, now)
            n = len(q)
            out[profile] = (
                n / self.window_s,
                sum(e[1] for e in q) / self.window_s,
                sum(e[2] for e in q) / self.window_s,
            )
        return out

    def export(self, now: float) -> dict[str, float]:
        """The flat metrics; output token rates at each profile's learned level (under the
        policy's `autoscaling.demand_level` in force)."""
        spec = self.policy().spec.autoscaling.demand_level if self.policy else DemandLevelSpec()
        out: dict[str, float] = {}
        for profile, (rps, tin, tout) in self.rates(now).items():
            out[demand_key(profile, "rps")] = rps
            out[demand_key(profile, "in_tps")] = tin
            out[demand_key(profile, "out_tps")] = self.level.scale(profile, tout, spec)
        for profile, (rps, tin, tout) in self.refused_rates(now).items():
            out[demand_key(profile, "refused_rps")] = rps
            out[demand_key(profile, "refused_in_tps")] = tin
            out[demand_key(profile, "refused_out_tps")] = self.level.scale(profile, tout, spec)
        for profile, q in self._spend.items():
            while q and q[0][0] < now - self.window_s:
                q.popleft()
            out[demand_key(profile, "usd_h")] = sum(u for _, u in q) / self.window_s * 3600.0
        for profile, jq in self._judged.items():
            while jq and jq[0][0] < now - self.window_s:
                jq.popleft()
            out[demand_key(profile, "slo_judged")] = float(len(jq))
            out[demand_key(profile, "slo_within")] = float(sum(ok for _, ok in jq))
        return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LatencyMeter:
    window_s: float = 60.0
    _ttft: deque[tuple[float, float]] = field(default_factory=deque)
    _tpot: deque[tuple[float, float]] = field(default_factory=deque)

    def first_token(self, ttft_ms: float, now: float) -> None:
        self._ttft.append((now, ttft_ms))

    def stream_done(self, first_at: float, last_at: float, items: int, now: float) -> None:
        """A stream that yielded `items` items, the first at `first_at`, the last at `last_at`."""
        if items >= 2 and last_at > first_at:
            self._tpot.append((now, 1000.0 * (last_at - first_at) / (items - 1)))

    def export(self, now: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, q in (("ttft", self._ttft), ("tpot", self._tpot)):
            while q and q[0][0] < now - self.window_s:
                q.popleft()
            if q:
                values = [v for _, v in q]
                out[f"{name}_p50_ms"] = percentile(values, 50)
                out[f"{name}_p95_ms"] = percentile(values, 95)
        return out
