"""What a profile replica reports to the replica router about the work it holds."""

from __future__ import annotations

import warnings

import pytest

from orchestrator.routing.affinity import STATS_KEYS, ReplicaStats


def test_a_replica_reports_the_prompt_tokens_still_before_their_first_token():
    pytest.importorskip("ray.serve.llm")
    from orchestrator.serving.profile_server import ProfileServer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # LLMServer.__del__ of a bare instance
        server = object.__new__(ProfileServer)
        # [prompt, predicted, generated]: one long prompt still prefilling, one decoding
        server._work = {1: [40_000, 100, 0], 2: [5_000, 10, 3]}
        assert server.prefill_tokens() == 40_000
        assert server.outstanding_tokens() == 40_000 / 16 + 100 + 7
        del server


def test_the_prefill_backlog_travels_in_the_routing_stats():
    assert "prefill_tokens" in STATS_KEYS
    stats = ReplicaStats(prefill_tokens=1234.0)
    assert ReplicaStats.from_dict(stats.to_dict()).prefill_tokens == 1234.0
    assert ReplicaStats.from_dict({"prefill_tokens": "bad"}).prefill_tokens is None
