"""Routing prices the wait a request will see in the ingress queue (its tenant's place in the
fair order, `PlanState.ahead`), not the whole queue: a light tenant first in line is not sent
to a slower profile because another tenant's backlog fills the cheaper one's queue."""

from __future__ import annotations

from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import LiveState
from orchestrator.request.route_inputs import seen_from_queue
from orchestrator.routing import TenantRules, decide, with_live
from tests.routing.routing_helpers import EASY, LLAMA

# every batch slot of the one replica busy (48), 400 more waiting in the ingress queue
SATURATED = LiveState(replicas_running=1, requests_in_flight=48, requests_queued=400)


def _ttft(decision, profile: str) -> float:
    return next(c.estimate.ttft_ms for c in decision.candidates if c.profile == profile)


def test_first_in_line_keeps_the_cheaper_profile_whose_queue_is_long(gpu_views):
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED})
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=2000, tpot_p95_ms=40))
    behind_all = decide(LLAMA, EASY, rules, views)
    assert behind_all.profile == "llama8b-bf16-eagle3"  # 400 queued: the cheaper one misses
    first = decide(LLAMA, EASY, rules, seen_from_queue(views, {"llama8b-fp8-ngram": 0}))
    assert first.profile == "llama8b-fp8-ngram" and first.misses == ()
    assert _ttft(first, "llama8b-fp8-ngram") < _ttft(behind_all, "llama8b-fp8-ngram")


def test_a_place_never_adds_to_the_queue_and_absent_means_the_whole_queue(gpu_views):
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED})
    assert seen_from_queue(views, {}) is views
    same = seen_from_queue(views, {"llama8b-fp8-ngram": 10_000})
    assert [v.live for v in same] == [v.live for v in views]
    placed = seen_from_queue(views, {"llama8b-fp8-ngram": 3})
    live = {v.name: v.live for v in placed}
    assert live["llama8b-fp8-ngram"].requests_queued == 3
    assert live["llama8b-fp8-ngram"].requests_in_flight == SATURATED.requests_in_flight
