"""A batch job beside a trace: what it adds under ours (paced) and when run at once.

    result = simulate_batch(catalog, policy, trace, lines=10_000, deadline_s=6 * 3600)

Three runs of ours on the same cluster and traffic: the trace alone (the base), the trace plus
the job's lines released by the product's own pacing (`orchestrator.batch.pacing.plan`), and
the trace plus the lines released at once (`at_once_concurrency` lines in flight from the
start until done, as a client without a scheduler runs a job). What the job costs is the
replica cost it adds over the base; when it finishes is its last line's end. With
`ablation=True` two more runs split the pacing in its parts (`PACINGS`): the even pace alone
(no trough filling) and trough filling alone (with only the deadline's floor under it, the
rule the product uses when it yields to interactive traffic).

The simulator has no feedback loop from lines to pacing, so pacing runs feed-forward on the
base run's timeline: each controller tick it sees the interactive requests ongoing on the
pools the batch tenant may use against their quiet slots (`pacing.quiet_slots` x replicas)
and counts a started line as running for `line_s` (the mean line's latency on the cheapest
profile the batch tenant may use, at half its batch). Lines are sampled from the trace's own
requests (text, sizes, needed tier) and sent as the batch tenant's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from orchestrator.batch.pacing import Yield, quiet_slots
from orchestrator.batch.pacing import plan as pace_plan
from orchestrator.batch.store import ActiveJob
from orchestrator.catalog.schema import Catalog
from orchestrator.policy import Policy
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.run import assign_tenants, simulate
from orchestrator.simulate.traffic import SimRequest, finish

BATCH_TENANT = "batch"
# refusals that mean the job did not get the capacity it needed (not policy refusals)
CAPACITY_REASONS = frozenset(
    {"server_overloaded", "queue_timeout", "client_timeout", "no_replica", "latency_slo_unmeetable",
     "no_healthy_profile"}
)  # fmt: skip
TICK_S = 10.0
# the product's pacing ("paced": even pace and trough filling) and its parts alone
PACINGS = ("paced", "even_only", "troughs_only")


@dataclass(frozen=True)
class BatchRun:
    name: str  # "paced" (ours), "at_once", or a part of ours alone ("even_only", "troughs_only")
    added_cost_usd: float  # replica cost over the trace-alone run
    finish_s: float  # the last line's end (from the job's start)
    lines_served: int
    lines_rejected: int
    rejected_by_reason: dict[str, int]
    interactive_ttft_p95_ms: float
    met_deadline: bool
    starts_s: tuple[float, ...] = ()  # when each line was released (from the trace's start)


@dataclass(frozen=True)
class BatchResult:
    base_cost_usd: float
    base_ttft_p95_ms: float
    runs: dict[str, BatchRun]
    line_s: float
    notes: list[str]

    def saving(self) -> float | None:
        """1 - paced / at-once added cost (None when at once adds nothing)."""
        once = self.runs["at_once"].added_cost_usd
        return 1.0 - self.runs["paced"].added_cost_usd / once if once > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "base_cost_usd": self.base_cost_usd,
            "base_interactive_ttft_p95_ms": self.base_ttft_p95_ms,
            "line_s": self.line_s,
            "saving": self.saving(),
            "runs": {
                k: {f: v for f, v in vars(run).items() if f != "starts_s"}
                for k, run in self.runs.items()
            },
            "notes": self.notes,
        }


def repeat(requests: Sequence[SimRequest], times: int, period_s: float) -> list[SimRequest]:
    """The trace `times` over, each copy `period_s` after the previous (rids renumbered)."""
    out = [
        replace(r, arrival_s=r.arrival_s + k * period_s, body_key=r.body_key or id(r.body))
        for k in range(times)
        for r in requests
    ]
    return finish(out)


def sample_lines(
    requests: Sequence[SimRequest], n: int, tenant: str, seed: int
) -> list[SimRequest]:
    """`n` batch lines drawn (with replacement) from the trace's requests, as `tenant`'s."""
    rng = np.random.default_rng([seed, 17])
    picks = rng.integers(len(requests), size=n)
    return [
        replace(
            requests[int(i)],
            rid=-1,
            tenant=tenant,
            body_key=requests[int(i)].body_key or id(requests[int(i)].body),
        )  # fmt: skip
        for i in picks
    ]


def line_seconds(lines: Sequence[SimRequest], spec: ReplicaSpec) -> float:
    """A line's mean latency on `spec` with half its batch decoding beside it."""
    n = max(1, spec.cap // 2)
    per = [spec.prefill_s(r.prompt_tokens, n) + r.output_tokens / spec.rate[n] for r in lines]
    return float(np.mean(per)) if per else 1.0


def paced_starts(
    n: int,
    start_s: float,
    deadline_s: float,
    line_s: float,
    timeline: Sequence[tuple[float, list[int], list[int]]],
    caps: Sequence[int],
    tenant_cap: int,
    pacing: str = "paced",
) -> list[float]:
    """Start times of `n` lines as the product's pacing (or one of its parts, `PACINGS`)
    releases them (see module doc)."""
    if pacing not in PACINGS:
        raise ValueError(f"pacing must be one of {PACINGS}")
    starts: list[float] = []
    running_until: list[float] = []
    ticks = {round(t / TICK_S): (reps, ongoing) for t, reps, ongoing in timeline}
    now = start_s
    while len(starts) < n:
        reps, ongoing = ticks.get(round(now / TICK_S), ([0] * len(caps), [0] * len(caps)))
        slots = sum(r * c for r, c in zip(reps, caps, strict=True))
        busy = sum(o for o, c in zip(ongoing, caps, strict=True) if c > 0)  # pools it may use
        running_until = [u for u in running_until if u > now]
        job = ActiveJob("job", BATCH_TENANT, "", start_s, start_s + deadline_s,
                        n - len(starts), len(running_until), len(starts), line_s, n)  # fmt: skip
        utilization = min(1.0, busy / slots) if slots else 1.0
        (pace,) = pace_plan(
            [job], now, tenant_cap=lambda _: tenant_cap,
            running_by_tenant={BATCH_TENANT: len(running_until)},
            utilization=1.0 if pacing == "even_only" else utilization,
            free_slots=max(0, slots - busy),
            # trough filling alone: the yielding rule with interactive traffic always quiet,
            # so only the deadline floor stands under the trough's lines
            exclusive=Yield(math.inf, max(1, slots)) if pacing == "troughs_only" else None,
            tenant_yield_s=lambda _: 1.0,
        )  # fmt: skip
        for j in range(pace.start):
            t = now + TICK_S * j / max(1, pace.start)
            starts.append(t)
            running_until.append(t + line_s)
        now += TICK_S
    return starts


def at_once_starts(n: int, start_s: float, line_s: float, concurrency: int) -> list[float]:
    """`concurrency` lines in flight from the start, the next as one ends."""
    return [start_s + (k // concurrency) * line_s for k in range(n)]


def _with_lines(
    trace: Sequence[SimRequest], lines: Sequence[SimRequest], starts: Sequence[float]
) -> tuple[list[SimRequest], set[int]]:
    timed = [replace(ln, arrival_s=t) for ln, t in zip(lines, starts, strict=True)]
    merged = finish([replace(r) for r in trace] + timed)
    return merged, {i for i, r in enumerate(merged) if r.tenant == BATCH_TENANT}


def simulate_batch(
    catalog: Catalog,
    policy: Policy,
    trace: list[SimRequest],
    *,
    lines: int,
    deadline_s: float,
    start_s: float = 0.0,
    at_once_concurrency: int = 64,
    seed: int = 0,
    ablation: bool = False,
    progress: Callable[[str], None] | None = None,
    **simulate_kwargs: Any,
) -> BatchResult:
    """The job's added cost and finish time, paced by ours and run at once, and with
    `ablation` by the even pace alone and trough filling alone (module doc)."""
    say = progress or (lambda _m: None)
    tenant = policy.tenant(BATCH_TENANT) if BATCH_TENANT in policy.tenants else None
    if tenant is None:
        raise ValueError(f"the policy has no tenant {BATCH_TENANT!r} to run the job as")
    # interactive traffic keeps one tenant mix in all three runs, the batch tenant excluded
    weights = {t.name: 1.0 for t in policy.reachable_tenants() if t.name != BATCH_TENANT}
    interactive = [replace(r) for r in trace if r.tenant != BATCH_TENANT]
    assign_tenants(interactive, policy, weights, seed)
    simulate_kwargs["tenant_weights"] = weights
    say(f"base: {len(interactive)} interactive requests")
    base = simulate(catalog, policy, [replace(r) for r in interactive], policies=["ours"],
                    seed=seed, **simulate_kwargs).policies["ours"]  # fmt: skip
    specs = [ReplicaSpec.of(p) for p in catalog.profiles]
    allowed = set(tenant.all_eligible_profiles())
    cheapest = min((s for s in specs if s.name in allowed), key=lambda s: s.price_per_hour)
    job_lines = sample_lines(interactive, lines, BATCH_TENANT, seed)
    line_s = line_seconds(job_lines, cheapest)
    caps = [quiet_slots(s.perf) if s.name in allowed else 0 for s in specs]
    cap = tenant.batch.max_concurrent_lines or 1
    timeline = base.outcome.timeline
    plans = {
        name: paced_starts(lines, start_s, deadline_s, line_s, timeline, caps, cap, name)
        for name in (PACINGS if ablation else PACINGS[:1])
    }
    plans["at_once"] = at_once_starts(lines, start_s, line_s, at_once_concurrency)
    base_cost = float(base.outcome.replica_cost.sum())
    base_p95 = _p95_ms(base.outcome.ttft_s)
    runs = {}
    for name, starts in plans.items():
        merged, batch_ids = _with_lines(interactive, job_lines, starts)
        say(f"{name}: {lines} lines from {min(starts):.0f} s to {max(starts):.0f} s")
        out = simulate(catalog, policy, merged, policies=["ours"], seed=seed,
                       **simulate_kwargs).policies["ours"].outcome  # fmt: skip
        is_line = np.zeros(len(merged), dtype=bool)
        is_line[list(batch_ids)] = True
        arrivals = np.array([r.arrival_s for r in merged])
        served = is_line & (out.profile >= 0)
        ends = arrivals[served] + out.e2e_s[served]
        finish_s = float(ends.max() - start_s) if served.any() else math.inf
        runs[name] = BatchRun(
            name=name,
            added_cost_usd=float(out.replica_cost.sum()) - base_cost,
            finish_s=finish_s,
            lines_served=int(served.sum()),
            lines_rejected=int((is_line & (out.profile < 0)).sum()),
            rejected_by_reason=dict(
                Counter(out.reject_reason[i] for i in sorted(batch_ids) if out.profile[i] < 0)
            ),
            interactive_ttft_p95_ms=_p95_ms(out.ttft_s[~is_line]),
            # a line the policy refuses (its cap, say) is an error-file line, not a late one
            starts_s=tuple(starts),
            met_deadline=finish_s <= deadline_s
            and not any(r in CAPACITY_REASONS for i in batch_ids if (r := out.reject_reason[i])),
        )
    notes = [
        f"lines sampled from the trace, run as tenant {BATCH_TENANT!r}; line_s {line_s:.1f} s on "
        f"{cheapest.name}; tenant cap {cap} lines; at once: {at_once_concurrency} in flight",
        "pacing is feed-forward on the trace-alone run's timeline (see orchestrator/simulate/batch.py)",
    ]
    return BatchResult(base_cost, base_p95, runs, line_s, notes)


def _p95_ms(ttft_s: np.ndarray) -> float:
    values = ttft_s[~np.isnan(ttft_s)]
    return float(np.percentile(values, 95) * 1000.0) if values.size else math.nan
