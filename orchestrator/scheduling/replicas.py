"""Replica choice inside one profile: least predicted outstanding work, prefix affinity as a
score (pure: the Serve `RequestRouter` and the simulator call it).

A replica's outstanding work is the predicted work of the requests it holds: prefill (prompt
tokens weighted by `key.PROMPT_WEIGHT`) plus the decode still predicted to remain. A replica
likely to hold the request's prompt prefix in its KV cache (its "home", by rendezvous hashing)
is credited `affinity_tokens` of work, so affinity wins between near-equal replicas and gives
way when the home replica is much busier. Replicas at their concurrency limit come last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.scheduling.key import PROMPT_WEIGHT

DEFAULT_AFFINITY_TOKENS = 256.0
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
    full: bool = False  # at max_ongoing_requests


def choose_replica(
    replicas: Sequence[ReplicaLoad],
    *,
    home: str | None = None,
    affinity_tokens: float = DEFAULT_AFFINITY_TOKENS,
) -> list[str]:
    """Replica ids, best first: not full, then least outstanding work minus the affinity
    credit of `home`; ties keep the given order (pass them in rendezvous order)."""
    order = {r.replica_id: i for i, r in enumerate(replicas)}

    def score(r: ReplicaLoad) -> tuple[bool, float, int]:
        credit = affinity_tokens if r.replica_id == home else 0.0
        return (r.full, r.outstanding_tokens - credit, order[r.replica_id])

    return [r.replica_id for r in sorted(replicas, key=score)]
