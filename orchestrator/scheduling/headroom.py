"""Fair headroom: a tenant below its fair share of a profile's batch slots need not wait for
one to free (pure: the server's ingress queue and the simulator's call it).

When every batch slot of a profile is busy, a request waits in the ingress queue and leaves in
fair order (`fairness.py`) as slots free. Under saturation slots free rarely (a batch full of
long answers: seconds between two), so a light tenant's request, first in line, still waits
for the next one: measured in the simulator, a tenant at a tenth of another's rate saw its
TTFT p95 at 2.7x its own alone while the cluster was scaling up (bench/scheduler_sim.py).
A tenant holding fewer slots than its fair share (the slots x its weight / the summed weights
of the tenants holding or waiting for slots of the profile) may take one beyond the batch, up
to `fair_headroom` x the slots in all: the engine batches it beside the others (each a little
slower), and a tenant over its share never takes one. Background work (batch lines) never does.

Short lane: a request predicted to need little work (`short_work_tokens`, decode-token
equivalents as in `key.py`) need not wait behind a batch of long answers either: it starts
beyond the batch slots while the engines have seats left (`max_num_seqs`). It holds a seat
for a moment, so the others' decoding slows briefly, where waiting would have cost it the
rest of a long answer (vLLM never preempts a running request for a waiting one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping


def fair_share(
    tenant: str,
    slots: int,
    held: Mapping[str, int],
    waiting: Iterable[str],
    weight: Callable[[str], float],
) -> float:
    """Slots `tenant` is due: `slots` split by weight among the tenants holding slots of the
    profile, waiting for one, and `tenant` itself."""
    active = {t for t, n in held.items() if n > 0} | set(waiting) | {tenant}
    total = sum(weight(t) for t in active)
    return slots * weight(tenant) / total if total > 0 else float(slots)


def may_borrow(
    tenant: str,
    *,
    slots: int,
    busy: int,
    held: Mapping[str, int],
    waiting: Iterable[str],
    weight: Callable[[str], float],
    headroom: float,
) -> bool:
    """Whether a request of `tenant` may start beyond the profile's `slots` (all `busy`):
    headroom is left (`busy < slots + floor(slots x headroom)`) and the tenant holds fewer
    slots than its fair share."""
    extra = math.floor(max(0, slots) * max(0.0, headroom))
    if extra <= 0 or busy >= slots + extra:
        return False
    return held.get(tenant, 0) < fair_share(tenant, slots, held, waiting, weight)


def may_start_short(work: float, *, busy: int, seats: int, short_work_tokens: int) -> bool:
    """Whether a request predicted to need `work` may start beyond a full batch: it is short
    (`0 < short_work_tokens` and `work <= short_work_tokens`) and an engine seat is free
    (`busy < seats`)."""
    return short_work_tokens > 0 and work <= short_work_tokens and busy < seats
