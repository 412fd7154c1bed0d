"""Ray Serve request router for profile deployments: prefix-cache affinity bounded by load.

A request that carries its prediction (`vllm_xargs`, set by the ingress; see
`orchestrator.scheduling.replicas`) goes to the replica with the least predicted outstanding
work, the prefix's home replica first unless it holds `imbalance_threshold` requests more
than the lightest or more prompt tokens to prefill (the replicas' `prefill_tokens` reports) than
the least by more than the request's prompt (`scheduling.choose_replica`); outstanding work = max(this router's own predicted work there, the replica's report). Others
are ranked by `affinity.rank_replicas` (request counts).

Thin adapter: the choices are pure functions (tested without Ray); this class
only feeds it the request's prompt, each replica's reported routing stats and this router's
own in-flight counts, and returns one replica per rank so Serve tries them in order (it
probes the first one's queue and moves on if that replica rejects).

Attach it to a deployment (Ray 2.60):

    from ray.serve.config import RequestRouterConfig
    deployment.options(request_router_config=RequestRouterConfig(
        request_router_class="orchestrator.routing.replica_router.PrefixAffinityRouter",
        request_router_kwargs={"prefix_chars": 1024, "imbalance_threshold": 4,
                               "kv_cache_high": 0.95},
        request_routing_stats_period_s=1.0,   # default 10 s is too stale for load balancing
        request_routing_stats_timeout_s=5.0,
    ))

and give the deployment class a `record_routing_stats(self) -> dict` (sync or async) that
returns `affinity.ReplicaStats(...).to_dict()`: running, waiting, kv_cache_usage (0..1),
ttft_ms, tpot_ms (all optional).
"""

from __future__ import annotations

import logging
from typing import Any

from ray.serve.request_router import (
    PendingRequest,
    ReplicaID,
    RequestRouter,
    RunningReplica,
)

from orchestrator.routing.affinity import (
    AffinityConfig,
    ReplicaLoad,
    ReplicaStats,
    extract_prompt_text,
    prefix_key,
    rank_replicas,
    rendezvous_order,
)
from orchestrator.scheduling import replicas as by_work
from orchestrator.scheduling.key import predicted_work

logger = logging.getLogger(__name__)


class PrefixAffinityRouter(RequestRouter):
    """Prefers the replica that likely holds the prompt prefix unless it is much busier."""

    def initialize_state(
        self,
        prefix_chars: int = 1024,
        imbalance_threshold: float = 4.0,
        kv_cache_high: float = 0.95,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(f"unknown PrefixAffinityRouter kwargs: {sorted(unknown)}")
        self._config = AffinityConfig(
            prefix_chars=int(prefix_chars),
            imbalance_threshold=float(imbalance_threshold),
            kv_cache_high=float(kv_cache_high),
        )
        self._in_flight: dict[str, int] = {}
        self._routed: dict[str, str] = {}  # internal request id -> replica unique id
        self._outstanding: dict[str, float] = {}  # replica -> predicted work routed there
        self._work: dict[str, float] = {}  # internal request id -> its predicted work
        self.last_reason = ""

    def _ensure_state(self) -> None:
        # Serve calls initialize_state only when request_router_kwargs are given
        if not hasattr(self, "_config"):
            self.initialize_state()

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        self._ensure_state()
        if not candidate_replicas:
            return []
        if len(candidate_replicas) == 1:  # nothing to rank: no prompt to read, no hash
            if pending_request is not None:
                pending_request.routing_context.should_backoff = True
            self.last_reason = "only_replica"
            return [list(candidate_replicas)]
        key = None
        tiebreak = ""
        work = prompt = None
        if pending_request is not None:
            carried = _carried(pending_request)
            if carried is not None:
                prompt, work = carried[0], predicted_work(*carried)
            # back off between full passes instead of spinning when every replica is full
            pending_request.routing_context.should_backoff = True
            text = extract_prompt_text(pending_request.args, pending_request.kwargs)
            key = prefix_key(text, self._config.prefix_chars)
            tiebreak = pending_request.metadata.internal_request_id
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        loads = [
            ReplicaLoad(
                replica_id=uid,
                in_flight=self._in_flight.get(uid, 0),
                stats=ReplicaStats.from_dict(r.routing_stats),
                max_ongoing=r.max_ongoing_requests,
            )
            for uid, r in by_id.items()
        ]
        if work is None:
            order, self.last_reason = rank_replicas(key, loads, self._config, tiebreak=tiebreak)
        else:
            order = self._by_work(key or tiebreak, loads, prompt if key else None)
            self.last_reason = "predicted_work"
        return [[by_id[uid]] for uid in order]

    def _by_work(
        self, key: str, loads: list[ReplicaLoad], prompt_tokens: int | None = None
    ) -> list[str]:
        kv_high = self._config.kv_cache_high
        ranked = rendezvous_order(key, [ld.replica_id for ld in loads])
        by_id = {ld.replica_id: ld for ld in loads}
        work = [
            by_work.ReplicaLoad(
                uid,
                max(self._outstanding.get(uid, 0.0), by_id[uid].stats.outstanding_tokens or 0.0),
                by_id[uid].full or (by_id[uid].stats.kv_cache_usage or 0.0) >= kv_high,
                by_id[uid].load,
                by_id[uid].stats.prefill_tokens or 0.0,
            )
            for uid in ranked
        ]
        return by_work.choose_replica(
            work,
            home=ranked[0] if key else None,
            imbalance_requests=self._config.imbalance_threshold,
            prompt_tokens=prompt_tokens,
        )

    def on_request_routed(
        self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any
    ) -> None:
        self._ensure_state()
        uid = replica_id.unique_id
        rid = pending_request.metadata.internal_request_id
        self._in_flight[uid] = self._in_flight.get(uid, 0) + 1
        self._routed[rid] = uid
        work = _work_of(pending_request)
        if work is not None:
            self._work[rid] = work
            self._outstanding[uid] = self._outstanding.get(uid, 0.0) + work

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        self._ensure_state()
        uid = self._routed.pop(internal_request_id, None)
        work = self._work.pop(internal_request_id, 0.0)
        if uid is not None:
            self._in_flight[uid] = max(0, self._in_flight.get(uid, 0) - 1)
            self._outstanding[uid] = max(0.0, self._outstanding.get(uid, 0.0) - work)

    def in_flight(self) -> dict[str, int]:
        """Requests this router sent to each replica and not yet completed (replica unique id
        -> count; replicas at 0 may be listed). A copy."""
        self._ensure_state()
        return dict(self._in_flight)

    def routed(self) -> dict[str, str]:
        """The requests in flight through this router: internal request id -> replica unique
        id. A copy."""
        self._ensure_state()
        return dict(self._routed)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        self._ensure_state()
        live = {r.replica_id.unique_id for r in replicas}
        self._in_flight = {uid: n for uid, n in self._in_flight.items() if uid in live}
        self._routed = {rid: uid for rid, uid in self._routed.items() if uid in live}
        self._outstanding = {uid: w for uid, w in self._outstanding.items() if uid in live}
        self._work = {rid: w for rid, w in self._work.items() if rid in self._routed}


def _carried(pending_request: PendingRequest) -> tuple[int, int] | None:
    """(prompt tokens, predicted output tokens) the request carries, or None."""
    for value in (*pending_request.kwargs.values(), *pending_request.args):
        found = by_work.request_work(value)
        if found is not None:
            return found
    return None


def _work_of(pending_request: PendingRequest) -> float | None:
    """The predicted work (decode-token equivalents) the request carries, or None."""
    found = _carried(pending_request)
    return None if found is None else predicted_work(*found)
