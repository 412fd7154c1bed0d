"""The order of waiting requests: one key for the ingress queue and the engines' priority.

`OrderKey` sorts ascending:
1. the tenant's priority class (higher policy `priority` first);
2. a virtual start time, in seconds on the queue's clock: `arrival + aging_s x f(work)` where
   `f` rises with the predicted remaining work from 0 towards 1 (`work / (work + HALF_WORK)`);
   in the ingress queue the work is how long the request holds a batch slot (`order_work`:
   its predicted output, its prompt at `ORDER_PROMPT_WEIGHT`), since a slot is what it waits
   for; in an engine's waiting queue (vLLM's priority) the prefill-weighted `predicted_work`,
   since a prefill is what that queue waits for (Mooncake x4: ordered by slot time there, mean
   TTFT 0.70 -> 0.75 s),
   so shorter predicted work goes first and a request is never overtaken by one that arrived
   more than `aging_s` after it (within a class and a tenant; tenants share by `fairness.py`).
   A tenant with deadline order uses `min(that, arrival + its TTFT target)`: the earliest
   deadline first, and never later than the aged work order would serve it.
   With `order: fcfs` the virtual start is the arrival.
3. a sequence number (arrival order among equal keys).
"""

from __future__ import annotations

from typing import NamedTuple

# predicted work at half the aging bound. Typical answers (tens to a few thousand tokens) then
# spread over most of the bound, so the key orders them by work while they wait; a log scale up
# to 128k tokens squeezed them into a fifth of it, and waits longer than that went in arrival
# order (measured: bench/scheduler_sim.py, docs/benchmark.md "Scheduling by predicted work")
HALF_WORK = 256.0
PROMPT_WEIGHT = 1 / 16  # a prompt token costs this many decode tokens of work (prefill batches)
# ... and holds a batch slot this many decode tokens' time: a slot decodes at a stream's rate
# (14-330 tokens/s on the example catalog, ~70 on its busiest profile) and prefills at the
# replica's (3,000-45,000 tokens/s), 1/640-1/110 of a decode token, ~1/500 where the traffic
# goes. Ordering by the prefill-weighted work put the prompt first (an Azure conversation
# prompt of 1,172 tokens weighed 73 against 254 output tokens; Mooncake's 15k-token prompts
# ~950 against 149), so knowing the answer's length barely moved the order (docs/benchmark.md,
# session 16)
ORDER_PROMPT_WEIGHT = 1 / 512
MAX_PRIORITY = 1000  # the policy's largest tenant priority
_CLASS_SPAN_MS = 10**13  # > any virtual start in ms (year 2286): classes never interleave


class OrderKey(NamedTuple):
    """Ascending: first served first."""

    class_rank: int  # -priority
    virtual_s: float
    seq: int


def predicted_work(prompt_tokens: int, predicted_output_tokens: float) -> float:
    """Remaining work of a queued request in decode-token equivalents."""
    return max(0.0, predicted_output_tokens) + PROMPT_WEIGHT * max(0, prompt_tokens)


def order_work(prompt_tokens: int, predicted_output_tokens: float) -> float:
    """A request's work for the ingress queue's order: how long it is predicted to hold a
    batch slot, in decode-token equivalents."""
    return max(0.0, predicted_output_tokens) + ORDER_PROMPT_WEIGHT * max(0, prompt_tokens)


def work_fraction(work: float) -> float:
    """0 for no work, 1/2 at `HALF_WORK`, below 1 for any finite work."""
    if work <= 0:
        return 0.0
    return work / (work + HALF_WORK)


def order_key(
    *,
    arrival_s: float,
    priority: int,
    work: float,
    aging_s: float,
    seq: int = 0,
    deadline_s: float | None = None,
    fcfs: bool = False,
) -> OrderKey:
    """The key of one request (see the module docstring)."""
    if fcfs:
        start = arrival_s
    else:
        start = arrival_s + aging_s * work_fraction(work)
        if deadline_s is not None:
            start = min(start, deadline_s)
    return OrderKey(-priority, start, seq)


def engine_priority(key: OrderKey, *, fcfs: bool = False) -> int:
    """vLLM's request `priority` for the key (lower is scheduled earlier; vLLM breaks ties by
    arrival): the class, then the virtual start in milliseconds, so each engine's waiting
    queue follows the ingress order. 0 for every request under `fcfs` (vLLM's arrival order)."""
    if fcfs:
        return 0
    return (MAX_PRIORITY + key.class_rank) * _CLASS_SPAN_MS + max(0, round(key.virtual_s * 1000))
