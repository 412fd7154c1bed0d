"""What a profile replica reports to the replica router about the work it holds."""

from __future__ import annotations

from orchestrator.routing.affinity import STATS_KEYS, ReplicaStats


def test_the_prefill_backlog_travels_in_the_routing_stats():
    # ProfileServer.record_routing_stats fills it: the prompts of its streams before their
    # first token (scheduling.replicas.pending_prefill, tested there)
    assert "prefill_tokens" in STATS_KEYS
    stats = ReplicaStats(prefill_tokens=1234.0)
    assert ReplicaStats.from_dict(stats.to_dict()).prefill_tokens == 1234.0
    assert ReplicaStats.from_dict({"prefill_tokens": "bad"}).prefill_tokens is None
