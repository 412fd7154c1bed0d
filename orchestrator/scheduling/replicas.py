"""Replica choice inside one profile: least predicted outstanding work, prefix affinity as a
score (pure: the Serve `RequestRouter` and the simulator call it).

A replica's outstanding work is the predicted work of the requests it holds: prefill (prompt
tokens weighted by `key.PROMPT_WEIGHT`) plus the decode still predicted to remain. A replica
likely to hold the request's prompt prefix in its KV cache (its "home", by rendezvous hashing)
is credited `affinity_tokens` of work, so affinity wins between near-equal replicas and gives
way when the home replica is much busier. Replicas at their concurrency limit come last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_AFFINITY_TOKENS = 256.0


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
