"""Replica choice inside one profile: least predicted outstanding work, prefix affinity as a
score (pure: the Serve `RequestRouter` and the simulator call it).

A replica's outstanding work is the predicted work of the requests it holds: prefill (prompt
tokens weighted by `key.PROMPT_WEIGHT`) plus the decode still predicted to remain. A replica
likely to hold the request's prompt prefix in its KV cache (its "home", by rendezvous hashing)
comes first unless it is full, holds more than `imbalance_requests` requests beyond the
lightest replica (the bound of the count-based affinity rule, `routing.affinity`, so a
prediction never moves a request off a warm prefix that the count rule would keep), or has
more prompt tokens still to prefill than the lightest replica by more than the request's own
prompt: then even a prefix cache holding the whole prompt could not make its first token come
sooner there. Otherwise, and for the other ranks, least outstanding work first. Replicas at
their concurrency limit come last.

Why counts bound affinity and not a credit in predicted work: a credit of 256 tokens broke
affinity for long shared prompts (Mooncake x4, simulator: mean TTFT 0.83 s for one constant
prediction, 1.54 s with the true lengths; with the count bound 0.60 s and 0.67 s), and larger
credits still lost to the count bound (docs/benchmark.md, session 15). Why the prefill
backlog bounds it too: on Mooncake the count rule sent 37-62k-token prompts to a home already
prefilling several such prompts while the other replica was nearly idle, past the 3 s TTFT
target (simulator, session 17: 50 late answers -> 36, $7.07 -> $6.98; at x4 the same
attainment for 3 % less).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.scheduling.key import PROMPT_WEIGHT

DEFAULT_IMBALANCE_REQUESTS = 4.0  # as routing.affinity.AffinityConfig.imbalance_threshold
# keys of vLLM's `vllm_xargs` (a request's extension arguments) that carry the prediction from
# the ingress to the replica router and the replica
XARG_PROMPT = "orchestrator_prompt_tokens"
XARG_PREDICTED = "orchestrator_predicted_tokens"


def work_xargs(prompt_tokens: int, predicted_tokens: float) -> dict[str, int]:
    """The `vllm_xargs` entries the ingress adds to an engine request."""
    return {XARG_PROMPT: int(prompt_tokens), XARG_PREDICTED: max(0, round(predicted_tokens))}


def request_work(request: Any) -> tuple[int, int] | None:
    """(prompt tokens, predicted output tokens) an engine request carries, or None."""
    xargs = request.get("vllm_xargs") if isinstance(request, Mapping) else None
    if xargs is None:
        xargs = getattr(request, "vllm_xargs", None)
    if not isinstance(xargs, Mapping) or XARG_PREDICTED not in xargs:
        return None
    try:
        return int(xargs.get(XARG_PROMPT) or 0), int(xargs[XARG_PREDICTED])
    except (TypeError, ValueError):
        return None


def pending_prefill(prompt_tokens: int, generated: int) -> int:
    """Prompt tokens a request still has to prefill on its replica: all of them until its
    first token (prefix-cache hits unknown here), then none."""
    return prompt_tokens if generated == 0 else 0


def remaining_work(prompt_tokens: int, predicted_tokens: int, generated: int) -> float:
    """A request's outstanding work on its replica: its prefill until the first token, then
    the decode still predicted to remain (never below zero)."""
    prefill = PROMPT_WEIGHT * prompt_tokens if generated == 0 else 0.0
    return prefill + max(0, predicted_tokens - generated)


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    replica_id: str
    outstanding_tokens: float  # predicted prefill + remaining decode of its requests
    full: bool = False  # at max_ongoing_requests (or its KV cache nearly full)
    requests: int = 0  # requests it holds (running + waiting)
    prefill_tokens: float = 0.0  # prompt tokens it has still to prefill (queued or in progress)


def choose_replica(
    replicas: Sequence[ReplicaLoad],
    *,
    home: str | None = None,
    imbalance_requests: float = DEFAULT_IMBALANCE_REQUESTS,
    prompt_tokens: float | None = None,
) -> list[str]:
    """Replica ids, best first: `home` when it is not full, holds at most
    `imbalance_requests` requests more than the lightest replica and (with the request's
    `prompt_tokens` known) at most that many prompt tokens more to prefill than the replica
    with the least; then (or else) not full first, least outstanding work, the given order on
    ties (pass them in rendezvous order)."""
    order = {r.replica_id: i for i, r in enumerate(replicas)}
    ranked = sorted(replicas, key=lambda r: (r.full, r.outstanding_tokens, order[r.replica_id]))
    ids = [r.replica_id for r in ranked]
    if home is None or home not in order:
        return ids
    lightest = min(r.requests for r in replicas)
    h = replicas[order[home]]
    if h.full or h.requests - lightest > imbalance_requests:
        return ids
    least_prefill = min(r.prefill_tokens for r in replicas)
    if prompt_tokens is not None and h.prefill_tokens - least_prefill > prompt_tokens:
        return ids
    return [home, *(rid for rid in ids if rid != home)]
