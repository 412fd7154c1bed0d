"""Routing prices the wait of a profile's ingress queue as the requests of the request's own
priority class and better (`WaitQueue.waiting_through`), not its place in the fair order: a
light tenant's short request first in another tenant's backlog is priced that backlog, since
the fair share it would take there is capacity taken from the tenant whose pool it is (Azure
x10 cold: priced by place, 442 chat/internal requests went to the batch tenant's one-replica
pool, batch's TTFT 20 -> 56 s, theirs 5.6 s against 3.8 s on their own pool)."""

from __future__ import annotations

from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import LiveState
from orchestrator.request.route_inputs import seen_from_queue
from orchestrator.routing import TenantRules, decide, with_live
from orchestrator.scheduling import SchedulingSettings, TenantShare, Waiting, WaitQueue
from tests.routing.routing_helpers import EASY, LLAMA

# every batch slot of the one replica busy (48), 400 more waiting in the ingress queue
SATURATED = LiveState(replicas_running=1, requests_in_flight=48, requests_queued=400)


def _ttft(decision, profile: str) -> float:
    return next(c.estimate.ttft_ms for c in decision.candidates if c.profile == profile)


def test_a_light_tenants_short_request_is_priced_the_other_tenants_backlog(gpu_views):
    queue = WaitQueue(SchedulingSettings(default=TenantShare(max_queued=1000)), lambda: 0.0)
    queue.admit_now("batch", 50_000.0)  # batch has been served a lot on this pool
    for i in range(400):
        queue.push(Waiting(f"b{i}", "batch", predicted_tokens=500))
    assert queue.ahead_of("chat", "standard", 20.0) <= 1  # its place: next
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED})
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=2000, tpot_p95_ms=40))
    ahead = {"llama8b-fp8-ngram": queue.waiting_through("chat")}
    assert ahead == {"llama8b-fp8-ngram": 400}
    priced = decide(LLAMA, EASY, rules, seen_from_queue(views, ahead))
    assert priced.profile == "llama8b-bf16-eagle3"  # the cheaper one's backlog misses
    assert _ttft(priced, "llama8b-fp8-ngram") == _ttft(decide(LLAMA, EASY, rules, views),
                                                       "llama8b-fp8-ngram")  # fmt: skip


def test_a_place_never_adds_to_the_queue_and_absent_means_the_whole_queue(gpu_views):
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED})
    assert seen_from_queue(views, {}) is views
    same = seen_from_queue(views, {"llama8b-fp8-ngram": 10_000})
    assert [v.live for v in same] == [v.live for v in views]
    placed = seen_from_queue(views, {"llama8b-fp8-ngram": 3})
    live = {v.name: v.live for v in placed}
    assert live["llama8b-fp8-ngram"].requests_queued == 3
    assert live["llama8b-fp8-ngram"].requests_in_flight == SATURATED.requests_in_flight
