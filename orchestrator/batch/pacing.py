"""Which batch lines run now: earliest deadline first, just fast enough, more in troughs (pure).

A job must finish its lines, about `line_s` seconds each, before `deadline - margin`. Its
*due* lines are those an even pace over the window has started by now (`due_now`): the job
starts them as they fall due, spread over its window rather than packed at its start. While
the interactive load is in a trough (utilisation under `trough_utilization`), a job may also
run ahead, up to its tenant's `max_concurrent_lines`, on capacity that is running anyway;
otherwise it runs only what falls due, so batch work adds replicas only when a deadline needs
them. The trough's free slots are *quiet* slots
(`quiet_slots`): what a replica can run while the one latency model says an interactive
request's TTFT stays within `LATENCY_TOLERANCE` of an idle replica's.

Where a running replica has one quiet slot (it keeps an interactive TTFT within the tolerance
only alone: a CPU engine), any line beside an interactive request slows it, and an even pace
puts lines beside a share of them. There a job *yields*: while an interactive request was on
such a replica in the last `yield_s` seconds (the tenant's `batch.yield_to_interactive_s`) it
starts only what its deadline needs (`deadline_floor`: the lines the rest could no longer
start in time, `lanes` at a time back to back), and it fills the free slots once interactive
traffic has been quiet that long. The even pace then plays no part: it is the floor only when
the deadline needs it.

Invariants: jobs are served in deadline order; a job never has more lines in flight than its
tenant's cap (summed over the tenant's jobs); while the cap allows it never falls behind its
even pace (its deadline floor while yielding), so every line starts by `deadline - margin -
line_s`; trough filling never takes more than the `free_slots` left by interactive traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator import replica_model
from orchestrator.batch.store import ActiveJob

DEFAULT_LINE_S = 10.0  # a line's wall time before the job has finished one
# trough filling stops where the replica model says interactive TTFT would grow more than
# this over an idle replica's
LATENCY_TOLERANCE = 0.10
TYPICAL_PROMPT_TOKENS = 512


def quiet_slots(
    perf: replica_model.ReplicaPerformance,
    *,
    tolerance: float = LATENCY_TOLERANCE,
    prompt_tokens: int = TYPICAL_PROMPT_TOKENS,
) -> int:
    """Requests one replica can run while a newcomer's modelled TTFT stays within `tolerance`
    of an idle replica's (at least 1: the newcomer itself). TTFT, not TPOT: the batch's lines
    share decode with interactive streams as any request does (the planner sizes for that)."""
    ttft_idle = replica_model.ttft_ms(perf, prompt_tokens, 1)
    quiet = 1
    for n in range(2, perf.max_concurrency + 1):
        if replica_model.ttft_ms(perf, prompt_tokens, n) > (1 + tolerance) * ttft_idle:
            break
        quiet = n
    return quiet


@dataclass(frozen=True, slots=True)
class Pace:
    batch_id: str
    start: int  # lines to start now
    required: int  # lines the deadline needs started now (even pace; floor while yielding)
    predicted_finish: float  # when the job ends at the pace it will run (epoch s)


def margin_s(job: ActiveJob) -> float:
    """Time kept back before a deadline: a tenth of the window, at least a minute."""
    return max(60.0, 0.1 * (job.deadline - job.created_at))


def due_now(job: ActiveJob, now: float, line_s: float) -> int:
    """Lines the job must start now to keep an even pace that has every line started
    `line_s` before its deadline less margin: `total x elapsed / span` started by now
    (everything when late). An even pace, not the fewest lines in flight: work spread over
    the window disturbs interactive traffic least."""
    if job.pending == 0:
        return 0
    horizon = job.deadline - margin_s(job) - line_s
    span = horizon - job.created_at
    if span <= 0 or now >= horizon:
        return job.pending
    total = job.started + job.pending
    due = math.ceil(total * max(0.0, now - job.created_at) / span)
    return min(job.pending, max(0, due - job.started))


def deadline_floor(job: ActiveJob, now: float, line_s: float, lanes: int) -> int:
    """Lines the job must start now so that the rest, run `lanes` at a time back to back
    from the next line's end on, all start by `deadline - margin - line_s` (everything when
    that has passed). The least a yielding job may run: it keeps the deadline and no more."""
    if job.pending == 0:
        return 0
    horizon = job.deadline - margin_s(job) - line_s
    if now >= horizon:
        return job.pending
    later = max(1, lanes) * math.floor((horizon - now) / line_s)
    return max(0, job.pending - later)


@dataclass(frozen=True, slots=True)
class Yield:
    """Replicas that serve one request at a time within the latency tolerance (`quiet_slots`
    1) and what they see: seconds since an interactive request was last on one of them (0:
    one is there now) and the quiet slots of every running replica (the deadline floor's
    lanes)."""

    interactive_idle_s: float
    lanes: int


def plan(
    jobs: Sequence[ActiveJob],
    now: float,
    *,
    tenant_cap: Callable[[str], int],
    running_by_tenant: Mapping[str, int],
    utilization: float,
    free_slots: int,
    trough_utilization: float = 0.6,
    exclusive: Yield | None = None,
    tenant_yield_s: Callable[[str], float] = lambda _tenant: 0.0,
) -> list[Pace]:
    """How many lines of each job to start now (see the module docstring). `exclusive`: None
    when no running replica has a single quiet slot; `tenant_yield_s`: the tenant's
    `batch.yield_to_interactive_s` (0: never yield)."""
    in_flight = dict(running_by_tenant)
    spare = max(0, free_slots) if utilization < trough_utilization else 0
    out = []
    for job in sorted(jobs, key=lambda j: (j.deadline, j.batch_id)):
        line_s = job.mean_line_s or DEFAULT_LINE_S
        yield_s = tenant_yield_s(job.tenant) if exclusive is not None else 0.0
        if exclusive is not None and yield_s > 0:
            required = deadline_floor(job, now, line_s, exclusive.lanes)
            quiet = exclusive.interactive_idle_s >= yield_s
        else:
            required, quiet = due_now(job, now, line_s), True
        cap_left = max(0, tenant_cap(job.tenant) - in_flight.get(job.tenant, 0))
        start = min(job.pending, cap_left, required)
        extra = min(job.pending - start, cap_left - start, spare if quiet else 0)
        if extra > 0:
            start += extra
            spare -= extra
        in_flight[job.tenant] = in_flight.get(job.tenant, 0) + start
        pace = max(1, job.running + start)
        finish = now + math.ceil(job.pending / pace) * line_s if job.pending else now
        out.append(Pace(job.batch_id, start, required, finish))
    return out
