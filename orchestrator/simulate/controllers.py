"""Replica controllers, called every cluster tick (10 s of virtual time by default).

- `StaticController`: fixed replicas, never changes (returns None on every tick).
- `QueueLengthController`: Ray Serve's default autoscaling policy with its defaults
  (ray 2.60 `AutoscalingConfig`): the mean ongoing requests over a 30 s look-back divided by
  `target_ongoing_requests`, applied after the wish held for 30 s (up) or 600 s (down); a
  profile at zero replicas with requests waiting scales up at once (Serve's cold-start path).
- `DynamoSLAController`: Dynamo's SLA planner in aggregated mode with its constant load
  predictor: every adjustment interval (180 s), replicas = rate x output tokens / throughput per
  replica at the TTFT/TPOT SLO (the shared `capacity_at_slo`) + rate x prompt tokens / prefill
  rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from orchestrator.attainment import within_targets
from orchestrator.concepts import LatencySLO
from orchestrator.planning.level import DemandLevel
from orchestrator.simulate.cluster import Cluster


class StaticController:
    def __init__(self, replicas: Sequence[int]) -> None:
        self.replicas = list(replicas)

    def initial(self, cluster: Cluster) -> list[int]:
        return list(self.replicas)

    def tick(self, cluster: Cluster, now: float) -> list[int] | None:
        return None


class QueueLengthController:
    """Ray Serve's `replica_queue_length_autoscaling_policy` per pool (in virtual time)."""

    def __init__(
        self,
        initial: Sequence[int],
        target_ongoing: Sequence[float],
        *,
        look_back_s: float = 30.0,
        upscale_delay_s: float = 30.0,
        downscale_delay_s: float = 600.0,
        tick_s: float = 10.0,
    ) -> None:
        self._initial = list(initial)
        self.target_ongoing = list(target_ongoing)
        self.upscale_delay_s = upscale_delay_s
        self.downscale_delay_s = downscale_delay_s
        self.samples = [deque(maxlen=max(1, round(look_back_s / tick_s))) for _ in initial]
        self.wish = [(0, 0.0)] * len(initial)  # (direction, since)
        self.decisions: list[tuple[float, int, int]] = []  # (t, pool, new target) for tests

    def initial(self, cluster: Cluster) -> list[int]:
        return list(self._initial)

    def desired(self, i: int) -> int:
        s = self.samples[i]
        return math.ceil(sum(s) / len(s) / self.target_ongoing[i]) if s else 0

    def tick(self, cluster: Cluster, now: float) -> list[int] | None:
        out = []
        for i, pool in enumerate(cluster.pools):
            self.samples[i].append(pool.ongoing)
            current = pool.target
            want = max(pool.min_replicas, min(pool.max_replicas, self.desired(i)))
            if current == 0 and want > 0:  # cold start: no delay
                self.wish[i] = (0, now)
                self.decisions.append((now, i, want))
                out.append(want)
                continue
            direction = (want > current) - (want < current)
            if direction == 0:
                self.wish[i] = (0, now)
                out.append(current)
                continue
            if self.wish[i][0] != direction:
                self.wish[i] = (direction, now)
            delay = self.upscale_delay_s if direction > 0 else self.downscale_delay_s
            if now - self.wish[i][1] + 1e-9 >= delay:
                self.wish[i] = (0, now)
                self.decisions.append((now, i, want))
                out.append(want)
            else:
                out.append(current)
        return out


class DynamoSLAController:
    """Dynamo-style SLA planner on the pools given (others stay as they are)."""

    def __init__(
        self,
        initial: Sequence[int],
        slo: LatencySLO,
        *,
        interval_s: float = 180.0,
    ) -> None:
        self._initial = list(initial)
        self.slo = slo
        self.interval_s = interval_s
        self.next_s = interval_s
        self.acc = [[0, 0, 0] for _ in initial]  # arrivals, output tokens, prompt tokens
        self.since = 0.0

    def initial(self, cluster: Cluster) -> list[int]:
        return list(self._initial)

    def replicas_for(self, cluster: Cluster, i: int, rate: float, osl: float, isl: float) -> int:
        spec = cluster.pools[i].spec
        _, decode = spec.capacity(self.slo, isl, osl)
        busy = rate * osl / decode + rate * isl / spec.perf.prefill_tokens_per_s
        return math.ceil(busy) if busy > 0 else 0

    def tick(self, cluster: Cluster, now: float) -> list[int] | None:
        for a, pool in zip(self.acc, cluster.pools, strict=True):
            a[0] += pool.arrivals
            a[1] += pool.arrived_tokens
            a[2] += pool.arrived_prompt_tokens
        if now + 1e-9 < self.next_s:
            return None
        span = max(now - self.since, 1e-9)
        out = []
        for i, (n, out_tok, in_tok) in enumerate(self.acc):
            pool = cluster.pools[i]
            if pool.max_replicas == 0:
                out.append(0)
                continue
            rate = n / span
            want = self.replicas_for(
                cluster, i, rate, out_tok / n if n else 0, in_tok / n if n else 0
            )
            out.append(max(1, want) if self._initial[i] > 0 else want)
        self.acc = [[0, 0, 0] for _ in self.acc]
        self.since = now
        self.next_s = now + self.interval_s
        return out


class PlannerController:
    """Ours: the product's planning core (`orchestrator.planning.plan`), called every
    `autoscaling.interval_s` of the policy with an Observation built from the cluster's state,
    exactly the typed input the server's controller builds from live metrics, including the
    requests the router refused for capacity (`count_refused=False` leaves them out, to show
    what they are worth)."""

    def __init__(
        self,
        policy,
        initial: Sequence[int],
        *,
        tick_s: float = 10.0,
        count_refused: bool = True,
        targets=None,
        knobs=None,
    ) -> None:
        from orchestrator import planning

        self.planning = planning
        self.policy = policy
        self._initial = list(initial)
        self.interval_s = max(tick_s, float(getattr(policy.spec.autoscaling, "interval_s", tick_s)))
        self.next_s = 0.0
        self.since = 0.0
        self.state = None
        self.count_refused = count_refused
        self.targets = targets  # metrics.Targets: each request's own TTFT/TPOT targets
        self.knobs = knobs  # planning.PlannerKnobs (None: the product's defaults)
        self.acc: list[list[float]] = []
        self.decisions: list = []
        self.level = DemandLevel()  # generated / sized output tokens (planning/level.py)

    def initial(self, cluster: Cluster) -> list[int]:
        self.acc = [[0.0] * 6 for _ in cluster.pools]
        return list(self._initial)

    def observation(self, cluster: Cluster, now: float):
        span = max(now - self.since, 1e-9)
        profiles = {}
        keep = 1.0 if self.count_refused else 0.0
        spec = self.policy.spec.autoscaling.demand_level
        for pool, acc in zip(cluster.pools, self.acc, strict=True):
            n, in_tok, out_tok, refused, refused_in, refused_out = acc
            for sized, generated in pool.window_settled:  # the server learns at settlement
                self.level.observe(pool.name, sized, generated, spec)
            pool.window_settled.clear()
            out_tok, refused_out = (
                self.level.scale(pool.name, x, spec) for x in (out_tok, refused_out)
            )
            running = sum(r.admitted for r in pool.active)
            judged, within = self._judge(pool.window_judged)
            pool.window_judged.clear()
            profiles[pool.name] = self.planning.ProfileObservation(
                arrival_rate_rps=n / span,
                input_tokens_per_s=in_tok / span,
                output_tokens_per_s=out_tok / span,
                refused_rps=keep * refused / span,
                refused_input_tokens_per_s=keep * refused_in / span,
                refused_output_tokens_per_s=keep * refused_out / span,
                requests_running=running,
                requests_waiting=pool.ongoing - running,
                ttft_ms=_percentiles(pool.window_ttft_ms),
                tpot_ms=_percentiles(pool.window_tpot_ms),
                slo_judged=judged,
                slo_within=within,
                replicas_current=pool.target + pool.draining,
                replicas_ready=pool.ready,
                replicas_starting=pool.starting,
            )
            pool.window_ttft_ms.clear()
            pool.window_tpot_ms.clear()
        return self.planning.Observation(now_s=now, profiles=profiles)

    def _judge(self, finished: list) -> tuple[int, int]:
        """(judged, within their own TTFT and TPOT targets) of (rid, TTFT s, TPOT s) finished
        requests, as the server's ingress judges each settled request (none without targets)."""
        if self.targets is None:
            return 0, 0
        ttft, tpot = self.targets.ttft_s, self.targets.tpot_s
        within = sum(
            within_targets(((first, ttft[rid]), (per, tpot[rid] if per is not None else None)))
            for rid, first, per in finished
        )
        return len(finished), within

    def tick(self, cluster: Cluster, now: float) -> list[int] | None:
        for a, pool in zip(self.acc, cluster.pools, strict=True):
            a[0] += pool.arrivals
            a[1] += pool.arrived_prompt_tokens
            a[2] += pool.predicted_tokens
            a[3] += pool.refused
            a[4] += pool.refused_prompt_tokens
            a[5] += pool.refused_predicted_tokens
        if now + 1e-9 < self.next_s:
            return None
        decision, self.state = self.planning.plan(
            self.observation(cluster, now), self.policy, self.state, self.knobs
        )
        self.decisions.append(decision)
        self.acc = [[0.0] * 6 for _ in self.acc]
        self.since = now
        self.next_s = now + self.interval_s
        return [decision.target_of(p.name) for p in cluster.pools]


def _percentiles(values: list[float]):
    from orchestrator.planning import Percentiles

    if not values:
        return Percentiles()
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))]

    return Percentiles(p50=q(0.5), p90=q(0.9), p95=q(0.95))
