"""Replica choice inside one profile: least predicted outstanding work, prefix affinity as a
score (pure: the Serve `RequestRouter` and the simulator call it).

A replica's outstanding work is the predicted work of the requests it holds: prefill (prompt
tokens weighted by `key.PROMPT_WEIGHT`) plus the decode still predicted to remain. A replica
likely to hold the request's prompt prefix in its KV cache (its "home", by rendezvous hashing)
comes first unless it is full or holds more than `imbalance_requests` requests beyond the
lightest replica: the bound of the count-based affinity rule (`routing.affinity`), so a
prediction never moves a request off a warm prefix that the count rule would keep. Otherwise,
and for the other ranks, least outstanding work first. Replicas at their concurrency limit
come last.

Why counts bound affinity and not a credit in predicted work: a credit of 256 tokens broke
affinity for long shared prompts (Mooncake x4, simulator: mean TTFT 0.83 s for one constant
prediction, 1.54 s with the true lengths; with the count bound 0.60 s and 0.67 s), and larger
credits still lost to the count bound (docs/benchmark.md, session 15).
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


def choose_replica(
    replicas: Sequence[ReplicaLoad],
    *,
    home: str | None = None,
    imbalance_requests: float = DEFAULT_IMBALANCE_REQUESTS,
) -> list[str]:
    """Replica ids, best first: `home` when it is not full and holds at most
    `imbalance_requests` requests more than the lightest replica; then (or else) not full
    first, least outstanding work, the given order on ties (pass them in rendezvous order)."""
    order = {r.replica_id: i for i, r in enumerate(replicas)}
    ranked = sorted(replicas, key=lambda r: (r.full, r.outstanding_tokens, order[r.replica_id]))
    ids = [r.replica_id for r in ranked]
    if home is None or home not in order:
        return ids
    lightest = min(r.requests for r in replicas)
    h = replicas[order[home]]
    if h.full or h.requests - lightest > imbalance_requests:
        return ids
    return [home, *(rid for rid in ids if rid != home)]
