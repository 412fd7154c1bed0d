"""The Ray Serve adapter, driven with stand-in replicas (no Ray cluster is started)."""

from __future__ import annotations

import asyncio

import pytest
from ray._private import auto_init_hook
from ray.serve._private.common import (
    DeploymentHandleSource,
    DeploymentID,
    ReplicaID,
    RequestMetadata,
)
from ray.serve.request_router import PendingRequest  # noqa: E402

from orchestrator.routing.affinity import prefix_key, rendezvous_order  # noqa: E402
from orchestrator.routing.replica_router import PrefixAffinityRouter  # noqa: E402

DEP = DeploymentID(name="profile-x", app_name="orchestrator")


@pytest.fixture(autouse=True)
def _no_ray_cluster(monkeypatch):
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", False)


class FakeReplica:
    """Just what the router and its base class read from a RunningReplica."""

    def __init__(self, uid: str, stats: dict | None = None, max_ongoing: int = 8):
        self.replica_id = ReplicaID(unique_id=uid, deployment_id=DEP)
        self.routing_stats = stats or {}
        self.max_ongoing_requests = max_ongoing
        self.node_id = "n"
        self.availability_zone = None
        self.multiplexed_model_ids: set[str] = set()

    async def get_queue_len(self, *, deadline_s: float) -> int:
        return 0


def _pending(text: str, rid: str) -> PendingRequest:
    body = {"messages": [{"role": "user", "content": text}]}
    meta = RequestMetadata(request_id=rid, internal_request_id=rid)
    return PendingRequest(args=[body], kwargs={}, metadata=meta)


def _run(coro):
    return asyncio.run(coro)


async def _router(**kwargs) -> PrefixAffinityRouter:
    router = PrefixAffinityRouter(deployment_id=DEP, handle_source=DeploymentHandleSource.UNKNOWN)
    router.initialize_state(**kwargs)
    return router


def test_home_replica_first_then_moves_when_busy():
    async def scenario():
        router = await _router(imbalance_threshold=2)
        reps = [FakeReplica(u) for u in ("u1", "u2", "u3")]
        pr = _pending("summarise this document", "req-1")
        key = prefix_key("user\nsummarise this document\n", 1024)
        home = rendezvous_order(key, ["u1", "u2", "u3"])[0]
        ranks = await router.choose_replicas(reps, pr)
        assert [len(r) for r in ranks] == [1, 1, 1]
        assert ranks[0][0].replica_id.unique_id == home and router.last_reason == "affinity"
        assert pr.routing_context.should_backoff is True
        # this router now has 3 requests in flight on the home replica
        for i in range(3):
            router.on_request_routed(_pending("x", f"f{i}"), ranks[0][0].replica_id, None)
        ranks = await router.choose_replicas(reps, _pending("summarise this document", "req-2"))
        assert ranks[0][0].replica_id.unique_id != home and router.last_reason == "imbalanced"
        for i in range(3):
            router.on_request_completed(ReplicaID(unique_id=home, deployment_id=DEP), f"f{i}")
        router.on_request_completed(ReplicaID(unique_id=home, deployment_id=DEP), "unknown")
        ranks = await router.choose_replicas(reps, _pending("summarise this document", "req-3"))
        assert ranks[0][0].replica_id.unique_id == home

    _run(scenario())


def test_reported_stats_steer_the_choice():
    async def scenario():
        router = await _router(imbalance_threshold=4)
        key = prefix_key("user\nhello\n", 1024)
        home = rendezvous_order(key, ["u1", "u2"])[0]
        other = "u2" if home == "u1" else "u1"
        reps = [
            FakeReplica(home, {"running": 8, "waiting": 4, "kv_cache_usage": 0.9}),
            FakeReplica(other, {"running": 1}),
        ]
        ranks = await router.choose_replicas(reps, _pending("hello", "r"))
        assert [r[0].replica_id.unique_id for r in ranks] == [other, home]

    _run(scenario())


def test_update_replicas_forgets_removed_ones_and_bad_kwargs_fail():
    async def scenario():
        router = await _router()
        reps = [FakeReplica("u1"), FakeReplica("u2")]
        router.update_replicas(reps)
        router.on_request_routed(_pending("a", "q1"), reps[1].replica_id, None)
        assert router.in_flight() == {"u2": 1} and router.routed() == {"q1": "u2"}
        router.update_replicas([reps[0]])
        await asyncio.sleep(0)  # let the base class's probe task run
        assert router.in_flight() == {} and router.routed() == {}
        assert await router.choose_replicas([], None) == []
        with pytest.raises(TypeError, match="unknown"):
            router.initialize_state(prefix_len=3)

    _run(scenario())


def _predicted(text: str, rid: str, prompt: int, predicted: int) -> PendingRequest:
    from orchestrator.scheduling.replicas import work_xargs

    body = {
        "messages": [{"role": "user", "content": text}],
        "vllm_xargs": work_xargs(prompt, predicted),
    }
    meta = RequestMetadata(request_id=rid, internal_request_id=rid)
    return PendingRequest(args=[body], kwargs={}, metadata=meta)


def test_predicted_work_picks_the_least_outstanding_replica_not_the_fewest_requests():
    async def scenario():
        router = await _router(imbalance_threshold=4)
        reps = {u: FakeReplica(u) for u in ("u1", "u2", "u3")}
        key = prefix_key("user\nnew\n", 1024)
        home, a, b = rendezvous_order(key, list(reps))
        # the prompt's home holds 8 short requests (beyond the bound of 4 over the lightest),
        # a one long generation, b three short ones: b has the least work left
        for i in range(8):
            router.on_request_routed(_predicted("h", f"h{i}", 100, 20), reps[home].replica_id, None)
        router.on_request_routed(_predicted("x", "long", 100, 4000), reps[a].replica_id, None)
        for i in range(3):
            router.on_request_routed(_predicted("y", f"s{i}", 100, 20), reps[b].replica_id, None)
        ranks = await router.choose_replicas(list(reps.values()), _predicted("new", "n1", 100, 50))
        assert ranks[0][0].replica_id.unique_id == b and router.last_reason == "predicted_work"
        # without a prediction the request counts decide (a holds fewest)
        ranks = await router.choose_replicas(list(reps.values()), _pending("new", "n2"))
        assert ranks[0][0].replica_id.unique_id == a
        # the long one ends: a is empty again and wins
        router.on_request_completed(reps[a].replica_id, "long")
        ranks = await router.choose_replicas(list(reps.values()), _predicted("new", "n3", 100, 50))
        assert ranks[0][0].replica_id.unique_id == a

    _run(scenario())


def test_predicted_work_keeps_the_prefix_home_within_the_count_bound():
    async def scenario():
        router = await _router(imbalance_threshold=4)
        reps = {u: FakeReplica(u) for u in ("u1", "u2")}
        key = prefix_key("user\nshared document\n", 1024)
        home, other = rendezvous_order(key, list(reps))
        # two long prompts on the home replica: more predicted work, but only 2 requests more
        for i in range(2):
            router.on_request_routed(
                _predicted("shared document", f"p{i}", 16_000, 50), reps[home].replica_id, None
            )
        pending = _predicted("shared document", "n", 16_000, 50)
        ranks = await router.choose_replicas(list(reps.values()), pending)
        assert [r[0].replica_id.unique_id for r in ranks] == [home, other]

    _run(scenario())


def test_a_home_far_behind_in_prefill_yields_the_prompt():
    async def scenario():
        router = await _router(imbalance_threshold=4)
        key = prefix_key("user\nshared document\n", 1024)
        home, other = rendezvous_order(key, ["u1", "u2"])
        # the home reports 90k prompt tokens still to prefill, the other 10k: 80k behind, more
        # than the 30k prompt could save in cache there
        reps = {
            home: FakeReplica(home, {"prefill_tokens": 90_000.0, "outstanding_tokens": 5700.0}),
            other: FakeReplica(other, {"prefill_tokens": 10_000.0, "outstanding_tokens": 700.0}),
        }
        pending = _predicted("shared document", "n", 30_000, 50)
        ranks = await router.choose_replicas(list(reps.values()), pending)
        assert ranks[0][0].replica_id.unique_id == other
        # 50k behind: within the prompt's 60k, the home keeps its prefix
        reps[other] = FakeReplica(other, {"prefill_tokens": 40_000.0, "outstanding_tokens": 2600.0})
        pending = _predicted("shared document", "m", 60_000, 50)
        ranks = await router.choose_replicas(list(reps.values()), pending)
        assert ranks[0][0].replica_id.unique_id == home

    _run(scenario())


def test_the_replicas_own_report_of_outstanding_work_counts():
    async def scenario():
        router = await _router()
        reps = [
            # u1 also reports 5 requests more than u2: beyond the count bound even as home
            FakeReplica("u1", {"outstanding_tokens": 9000.0, "running": 6}),
            FakeReplica("u2", {"outstanding_tokens": 10.0, "running": 1}),
        ]
        ranks = await router.choose_replicas(reps, _predicted("hello", "r", 10, 10))
        assert ranks[0][0].replica_id.unique_id == "u2"

    _run(scenario())


def test_a_lone_replica_is_chosen_as_ranking_would_choose_it():
    """One candidate: returned without reading the prompt, as every ranking would (both
    rankings return all replicas), and a full one still makes Serve back off."""

    async def scenario():
        router = await _router()
        for stats in ({}, {"running": 8, "waiting": 9, "kv_cache_usage": 0.99}):
            lone = [FakeReplica("u1", stats, max_ongoing=8)]
            for pending in (_pending("hello", "r1"), _predicted("hello", "r2", 100, 50)):
                ranks = await router.choose_replicas(lone, pending)
                assert ranks == [[lone[0]]] and router.last_reason == "only_replica"
                assert pending.routing_context.should_backoff is True
            assert await router.choose_replicas(lone, None) == [[lone[0]]]

    _run(scenario())
